"""Broadcasts in the server API: one send for many people, queued in bulk, resent and recalled as one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

import storage
from storage import AudienceMember, Broadcast

from .errors import Conflict, IdempotencyKeyReused, InAppDisabled, NotFound
from .filters import compile_filter
from .keys import CLOCK, POOL, WORKSPACE
from .paths import path_uuid
from .personalize import CompiledContent, TemplateError, compile_content, has_templates
from .render import json_response
from .schemas import AudienceSpec, BroadcastRequest, parse_body
from .sends import content_of, expiry_of, idempotency_of

__all__ = ["get_broadcast", "recall_broadcast", "resend_broadcast", "send_broadcast"]

_STATES = ("queued", "offered", "shown", "dismissed", "expired", "recalled")


def _view(broadcast: Broadcast) -> dict[str, object]:
    return {
        "id": str(broadcast.id),
        "status": broadcast.status,
        "audience": broadcast.audience,
        "campaign": broadcast.campaign,
        "created_at": broadcast.created_at,
        "sends": broadcast.sends,
        "last_sent_at": broadcast.last_sent_at,
        "recalled_at": broadcast.recalled_at,
        "queued": broadcast.queued,
        "total": broadcast.total,
        "counts": broadcast.counts,
        # The states alone (without `action`) add up to `total`.
        "states": {state: broadcast.counts[state] for state in _STATES},
    }


def _audience(spec: AudienceSpec) -> storage.Audience:
    if spec.filter is not msgspec.UNSET:
        compiled = compile_filter(spec.filter, "$.audience.filter")
        return storage.Audience(filter=storage.AudienceFilter(compiled.path, compiled.vars, spec.filter))
    return storage.Audience(ids=tuple(spec.ids or ()), emails=tuple(spec.emails or ()), everyone=spec.all)


def _renderer(compiled: CompiledContent, data: dict[str, Any] | None) -> Callable[[AudienceMember], dict[str, Any]]:
    """Each person's content: `customer` is their attributes with `id` and `email`; `data` the request's."""

    def render(person: AudienceMember) -> dict[str, Any]:
        context: dict[str, Any] = {
            "customer": {**person.attributes, "id": person.external_id, "email": person.email}
        }
        if data is not None:
            context["data"] = data
        try:
            return compiled.render(context)
        except TemplateError as exc:
            who = person.external_id if person.external_id is not None else person.email
            raise TemplateError(f"{exc.message} (rendering for person {who!r}); nothing was queued") from None

    return render


def _unknown() -> NotFound:
    return NotFound("no broadcast has this id in this workspace", code="unknown_broadcast")


async def send_broadcast(request: web.Request) -> web.Response:
    raw = await request.read()
    body = parse_body(raw, BroadcastRequest)
    key, key_hash = idempotency_of(request, raw)
    expires_at, ttl_s = expiry_of(request, body.expires_at, body.ttl_s)
    audience = _audience(body.audience)
    content = content_of(body.content)
    # Templates parse before anything is stored; plain content takes the single-statement path.
    render = _renderer(compile_content(content, strict=body.strict), body.data) if has_templates(content) else None
    outcome = await storage.send_broadcast(
        request.app[POOL],
        request[WORKSPACE].id,
        audience,
        content=content,
        properties=body.properties,
        priority=body.priority,
        persistent=body.persistent,
        campaign=body.campaign,
        expires_at=expires_at,
        ttl_s=ttl_s,
        idempotency_key=key,
        idempotency_hash=key_hash,
        now=request.app[CLOCK].now(),
        render=render,
    )
    if outcome.status == "disabled":
        raise InAppDisabled()
    if outcome.status == "key_reused":
        raise IdempotencyKeyReused()
    assert outcome.broadcast is not None
    if outcome.status == "replayed":
        return json_response(_view(outcome.broadcast), headers={"Idempotent-Replayed": "true"})
    return json_response(_view(outcome.broadcast), status=201)


async def get_broadcast(request: web.Request) -> web.Response:
    broadcast = await storage.get_broadcast(
        request.app[POOL], request[WORKSPACE].id, path_uuid(request, "broadcast"), request.app[CLOCK].now()
    )
    if broadcast is None:
        raise _unknown()
    return json_response(_view(broadcast))


async def resend_broadcast(request: web.Request) -> web.Response:
    outcome = await storage.resend_broadcast(
        request.app[POOL], request[WORKSPACE].id, path_uuid(request, "broadcast"), request.app[CLOCK].now()
    )
    if outcome.status == "unknown":
        raise _unknown()
    if outcome.status == "recalled":
        raise Conflict("this broadcast was recalled; a recalled broadcast cannot be resent",
                       code="broadcast_recalled")
    if outcome.status == "disabled":
        raise InAppDisabled()
    if outcome.status == "expired":
        raise Conflict("this broadcast's `expires_at` has passed; send a new broadcast instead",
                       code="broadcast_expired")
    assert outcome.broadcast is not None
    return json_response(_view(outcome.broadcast))


async def recall_broadcast(request: web.Request) -> web.Response:
    outcome = await storage.recall_broadcast(
        request.app[POOL], request[WORKSPACE].id, path_uuid(request, "broadcast"), request.app[CLOCK].now()
    )
    if outcome.broadcast is None:
        raise _unknown()
    return json_response({**_view(outcome.broadcast), "recalled": outcome.recalled})
