"""Event triggers in the server API, and the events that fire them: from the backend (server API)
and from devices (`POST /v1/track`, the SDK's `track`)."""

from __future__ import annotations

from aiohttp import web

from ..core import triggers
from ..core.devices import device_workspace
from .keys import CLOCK, CONFIG, POOL, RATE_LIMITER, WORKSPACE, WORKSPACES
from .params import path_person_id, path_uuid
from .schemas import PersonEventRequest, TrackRequest, TriggerRequest, check_data_size, parse_body
from .views import json_response, trigger_view

__all__ = ["create_trigger", "disable_trigger", "list_triggers", "record_person_event", "track"]


async def create_trigger(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), TriggerRequest)
    trigger = await triggers.create_trigger(
        request.app[POOL],
        request[WORKSPACE].id,
        event=body.event,
        filter=body.filter,
        message=body.message.new_message(),
        personalization=body.message.personalization(body.message.data),
        reentry=body.reentry,
        now=request.app[CLOCK].now(),
    )
    return json_response(trigger_view(trigger), status=201)


async def list_triggers(request: web.Request) -> web.Response:
    found = await triggers.list_triggers(request.app[POOL], request[WORKSPACE].id)
    return json_response({"triggers": [trigger_view(t) for t in found]})


async def disable_trigger(request: web.Request) -> web.Response:
    trigger = await triggers.disable_trigger(request.app[POOL], request[WORKSPACE].id, path_uuid(request, "trigger"))
    return json_response(trigger_view(trigger))


async def record_person_event(request: web.Request) -> web.Response:
    """An event from the backend; the person (by id) is created if new."""
    key = path_person_id(request)
    body = parse_body(await request.read(), PersonEventRequest)
    recorded = await triggers.record_event(
        request.app[POOL], request[WORKSPACE].id, key, match_email=False, name=body.name, data=body.data or {},
        source="server", now=request.app[CLOCK].now(),
    )
    return json_response(
        {"accepted": True, "queued": [str(i) for i in recorded.outcome.queued], "failed": recorded.failed}
    )


async def track(request: web.Request) -> web.Response:
    """An event from a device, under the identity proof the workspace asks for."""
    raw = await request.read()
    body = parse_body(raw, TrackRequest)
    check_data_size(raw, body.data, request.app[CONFIG].max_event_data_bytes)
    workspace = await device_workspace(
        request.app[WORKSPACES], body.site_id, body.user, body.user_hash, body.user_token, request.app[RATE_LIMITER],
        events=1, now=request.app[CLOCK].now(),
    )
    recorded = await triggers.record_event(
        request.app[POOL], workspace.id, body.user, match_email=True, name=body.name, data=body.data or {},
        source="device", now=request.app[CLOCK].now(),
    )
    return json_response({"accepted": True, "queued": [str(i) for i in recorded.outcome.queued]})
