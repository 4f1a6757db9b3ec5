"""Broadcasts in the server API: one send for many people, queued in bulk."""

from __future__ import annotations

import uuid

from aiohttp import web

import storage
from storage import Broadcast

from .errors import IdempotencyKeyReused, InAppDisabled, NotFound
from .keys import CLOCK, POOL, WORKSPACE
from .render import json_response
from .schemas import BroadcastRequest, parse_body
from .sends import content_of, expiry_of, idempotency_of

__all__ = ["get_broadcast", "send_broadcast"]


def _view(broadcast: Broadcast) -> dict[str, object]:
    return {
        "id": str(broadcast.id),
        "status": broadcast.status,
        "queued": broadcast.queued,
        "campaign": broadcast.campaign,
        "created_at": broadcast.created_at,
        "states": broadcast.states,
    }


async def send_broadcast(request: web.Request) -> web.Response:
    raw = await request.read()
    body = parse_body(raw, BroadcastRequest)
    key, key_hash = idempotency_of(request, raw)
    expires_at, ttl_s = expiry_of(request, body.expires_at, body.ttl_s)
    audience = storage.Audience(
        ids=tuple(body.audience.ids or ()), emails=tuple(body.audience.emails or ()), everyone=body.audience.all
    )
    outcome = await storage.send_broadcast(
        request.app[POOL],
        request[WORKSPACE].id,
        audience,
        content=content_of(body.content),
        properties=body.properties,
        priority=body.priority,
        persistent=body.persistent,
        campaign=body.campaign,
        expires_at=expires_at,
        ttl_s=ttl_s,
        idempotency_key=key,
        idempotency_hash=key_hash,
        now=request.app[CLOCK].now(),
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
    try:
        broadcast_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no broadcast has this id", code="unknown_broadcast") from None
    broadcast = await storage.get_broadcast(request.app[POOL], request[WORKSPACE].id, broadcast_id)
    if broadcast is None:
        raise NotFound("no broadcast has this id in this workspace", code="unknown_broadcast")
    return json_response(_view(broadcast))
