"""Single messages in the server API: send, read, recall, and the ready-made test message."""

from __future__ import annotations

from aiohttp import web

from ..core import sends, setup
from .keys import CLOCK, POOL, WORKSPACE
from .params import idempotency_of, path_uuid
from .schemas import SendRequest, TestMessageRequest, parse_body
from .views import json_response, server_message

__all__ = ["get_message", "recall_message", "send_message", "send_test_message"]


async def send_message(request: web.Request) -> web.Response:
    raw = await request.read()
    body = parse_body(raw, SendRequest)
    sent = await sends.send_message(
        request.app[POOL],
        request[WORKSPACE].id,
        body.to.recipient(),
        body.new_message(body.content, body.template_id),
        personalization=body.personalization(body.data),
        idempotency=idempotency_of(request, raw),
        now=request.app[CLOCK].now(),
    )
    if sent.replayed:
        return json_response(server_message(sent.message), headers={"Idempotent-Replayed": "true"})
    return json_response(server_message(sent.message), status=201)


async def get_message(request: web.Request) -> web.Response:
    message, events = await sends.get_message(
        request.app[POOL], request[WORKSPACE].id, path_uuid(request, "message"), request.app[CLOCK].now()
    )
    return json_response(server_message(message, events))


async def recall_message(request: web.Request) -> web.Response:
    message = await sends.recall_message(
        request.app[POOL], request[WORKSPACE].id, path_uuid(request, "message"), request.app[CLOCK].now()
    )
    return json_response(server_message(message))


async def send_test_message(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), TestMessageRequest)
    sent = await setup.send_test_message(
        request.app[POOL], request[WORKSPACE].id, body.to.recipient(), request.app[CLOCK].now()
    )
    return json_response(server_message(sent.message), status=201)
