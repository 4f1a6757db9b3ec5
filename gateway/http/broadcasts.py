"""Broadcasts in the server API: one send for many people, queued in bulk, resent and recalled as one."""

from __future__ import annotations

from aiohttp import web

from ..core import broadcasts
from .keys import CLOCK, POOL, WORKSPACE
from .params import idempotency_of, path_uuid
from .schemas import BroadcastRequest, parse_body
from .views import broadcast_view, json_response

__all__ = ["get_broadcast", "recall_broadcast", "resend_broadcast", "send_broadcast"]


async def send_broadcast(request: web.Request) -> web.Response:
    raw = await request.read()
    body = parse_body(raw, BroadcastRequest)
    sent = await broadcasts.send_broadcast(
        request.app[POOL],
        request[WORKSPACE].id,
        body.audience_choice(),
        body.new_message(body.content),
        personalization=body.personalization(body.data),
        idempotency=idempotency_of(request, raw),
        now=request.app[CLOCK].now(),
    )
    if sent.replayed:
        return json_response(broadcast_view(sent.broadcast), headers={"Idempotent-Replayed": "true"})
    return json_response(broadcast_view(sent.broadcast), status=201)


async def get_broadcast(request: web.Request) -> web.Response:
    broadcast = await broadcasts.get_broadcast(
        request.app[POOL], request[WORKSPACE].id, path_uuid(request, "broadcast"), request.app[CLOCK].now()
    )
    return json_response(broadcast_view(broadcast))


async def resend_broadcast(request: web.Request) -> web.Response:
    broadcast = await broadcasts.resend_broadcast(
        request.app[POOL], request[WORKSPACE].id, path_uuid(request, "broadcast"), request.app[CLOCK].now()
    )
    return json_response(broadcast_view(broadcast))


async def recall_broadcast(request: web.Request) -> web.Response:
    broadcast, recalled = await broadcasts.recall_broadcast(
        request.app[POOL], request[WORKSPACE].id, path_uuid(request, "broadcast"), request.app[CLOCK].now()
    )
    return json_response({**broadcast_view(broadcast), "recalled": recalled})
