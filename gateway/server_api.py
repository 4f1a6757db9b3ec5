"""The server API: handlers a product's backend calls with its workspace's API key."""

from __future__ import annotations

from aiohttp import web

import storage

from .errors import Conflict, IdempotencyKeyReused, InAppDisabled, NotFound, Unprocessable
from .keys import CLOCK, POOL, WORKSPACE, WORKSPACES
from .paths import path_person_id, path_uuid
from .people import identify_person
from .render import json_response, person_view, server_message, workspace_view
from .schemas import SendRequest, WorkspacePatch, parse_body, parse_object
from .sends import expiry_of, idempotency_of, send_to_person

__all__ = [
    "get_message",
    "get_workspace",
    "identify",
    "list_person_messages",
    "patch_workspace",
    "recall_message",
    "send_message",
]

async def send_message(request: web.Request) -> web.Response:
    raw = await request.read()
    body = parse_body(raw, SendRequest)
    key, key_hash = idempotency_of(request, raw)
    expires_at, ttl_s = expiry_of(request, body.expires_at, body.ttl_s)
    outcome = await send_to_person(
        request.app[POOL],
        request[WORKSPACE].id,
        body,
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
    assert outcome.message is not None
    if outcome.status == "replayed":
        return json_response(server_message(outcome.message), headers={"Idempotent-Replayed": "true"})
    return json_response(server_message(outcome.message), status=201)


async def get_message(request: web.Request) -> web.Response:
    workspace, pool = request[WORKSPACE], request.app[POOL]
    message = await storage.get_message(pool, workspace.id, path_uuid(request, "message"), request.app[CLOCK].now())
    if message is None:
        raise NotFound("no message has this id in this workspace", code="unknown_message")
    events = await storage.list_message_events(pool, message.id)
    return json_response(server_message(message, events))


async def recall_message(request: web.Request) -> web.Response:
    workspace, pool, now = request[WORKSPACE], request.app[POOL], request.app[CLOCK].now()
    message_id = path_uuid(request, "message")
    previous = await storage.recall_message(pool, workspace.id, message_id, now)
    if previous is None:
        raise NotFound("no message has this id in this workspace", code="unknown_message")
    if previous in ("shown", "dismissed"):
        raise Conflict("the message was already shown on a device; it cannot be recalled", code="already_shown")
    if previous == "expired":
        raise Conflict("the message expired before it could be recalled", code="already_expired")
    message = await storage.get_message(pool, workspace.id, message_id, now)
    assert message is not None
    return json_response(server_message(message))


async def identify(request: web.Request) -> web.Response:
    attributes = parse_object(await request.read())
    person = await identify_person(request.app[POOL], request[WORKSPACE].id, path_person_id(request), attributes)
    return json_response(person_view(person))


async def list_person_messages(request: web.Request) -> web.Response:
    key = path_person_id(request)
    by = request.query.get("by", "id")
    if by not in ("id", "email"):
        raise Unprocessable("`by` is `id` or `email`")
    pool, workspace = request.app[POOL], request[WORKSPACE]
    person = await storage.get_person(pool, workspace.id, key)
    if person is None or (by == "id" and person.external_id != key) or (
        by == "email" and person.email != key.lower()
    ):
        raise NotFound("no person with this id in this workspace", code="unknown_person")
    messages = await storage.list_person_messages(pool, person.id, now=request.app[CLOCK].now())
    return json_response({"person": person_view(person), "messages": [server_message(m) for m in messages]})


async def get_workspace(request: web.Request) -> web.Response:
    return json_response(workspace_view(request[WORKSPACE]))


async def patch_workspace(request: web.Request) -> web.Response:
    patch = parse_body(await request.read(), WorkspacePatch)
    intervals = patch.intervals
    workspace, recalled = await storage.update_workspace(
        request.app[POOL],
        request[WORKSPACE].id,
        in_app_enabled=patch.in_app_enabled,
        identity_mode=patch.identity_mode,
        active_s=intervals.active_s if intervals else None,
        inactive_s=intervals.inactive_s if intervals else None,
        low_s=intervals.low_s if intervals else None,
        recent_days=intervals.recent_days if intervals else None,
        lease_s=patch.lease_s,
        now=request.app[CLOCK].now(),
    )
    request.app[WORKSPACES].put(workspace)
    return json_response({**workspace_view(workspace), "recalled": recalled})
