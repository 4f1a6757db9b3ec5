"""Single messages in the server API: send (one or a batch), read, recall, and the ready-made test message."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from storage import Idempotency

from ..core import batches, sends, setup
from ..errors import ApiError
from .keys import CLOCK, POOL, WORKSPACE
from .params import idempotency_of, path_uuid
from .schemas import BatchEnvelope, BatchMessage, SendRequest, TestMessageRequest, parse_body, parse_value
from .views import error_body, json_response, server_message

__all__ = ["BATCH_PATH", "get_message", "recall_message", "send_batch", "send_message", "send_test_message"]

# Its body may be larger than any other's (`max_batch_body_bytes`, gateway/http/connections.py).
BATCH_PATH = "/v1/messages/batch"


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


def _batch_item(value: Any) -> batches.BatchItem:
    """One message of a batch; its idempotency digest covers the message without its key, so it
    matches the digest of the same body sent alone with the key as `Idempotency-Key`."""
    body = parse_value(value, BatchMessage)
    idempotency = None
    if body.idempotency_key is not None:
        canonical = orjson.dumps({k: v for k, v in value.items() if k != "idempotency_key"},
                                 option=orjson.OPT_SORT_KEYS)
        idempotency = Idempotency(body.idempotency_key, hashlib.sha256(canonical).digest())
    return batches.BatchItem(
        body.to.recipient(), body.new_message(body.content, body.template_id),
        personalization=body.personalization(body.data), idempotency=idempotency,
    )


def _item_error(index: int, exc: ApiError) -> dict[str, Any]:
    # Paths in a message's errors are relative to the message: name it within the batch.
    message = exc.message.replace("`$", f"`$.messages[{index}]")
    return {"index": index, "status": exc.status, **error_body(exc.code, message)}


async def send_batch(request: web.Request) -> web.Response:
    envelope = parse_body(await request.read(), BatchEnvelope)
    items: dict[int, batches.BatchItem] = {}
    answers: list[dict[str, Any] | None] = [None] * len(envelope.messages)
    for index, value in enumerate(envelope.messages):
        try:
            items[index] = _batch_item(value)
        except ApiError as exc:
            answers[index] = _item_error(index, exc)
    order = sorted(items)
    results = await batches.send_batch(
        request.app[POOL], request[WORKSPACE].id, [items[i] for i in order], now=request.app[CLOCK].now()
    )
    for index, result in zip(order, results, strict=True):
        if isinstance(result, ApiError):
            answers[index] = _item_error(index, result)
        else:
            answers[index] = {"index": index, "status": 200 if result.replayed else 201,
                              "replayed": result.replayed, "message": server_message(result.message)}
    done = [a for a in answers if a is not None]
    return json_response({
        "results": done,
        "queued": sum(1 for a in done if a["status"] == 201),
        "replayed": sum(1 for a in done if a["status"] == 200),
        "failed": sum(1 for a in done if "error" in a),
    })


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
