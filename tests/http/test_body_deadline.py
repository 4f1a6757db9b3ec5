"""The body deadline: a body that has arrived is read at once; one still on its way gets the deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import orjson

import storage
from gateway.config import Config
from gateway.http.app import create_app
from tests.helpers import Api


async def _exchange(client, request: bytes, rest: bytes | None = None) -> bytes:  # type: ignore[no-untyped-def]
    """Send `request` over a raw connection (then `rest`, once the first part is on its way); the answer's head."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        if rest is not None:
            writer.write(rest)
            await writer.drain()
        async with asyncio.timeout(10):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


def _poll(api: Api, declared: int | None = None) -> tuple[bytes, bytes]:
    body = orjson.dumps({"site_id": api.site_id, "user": "ada", "device_id": "d1"})
    head = (
        b"POST /v1/poll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (declared if declared is not None else len(body))
    )
    return head, body


async def test_a_poll_whose_body_came_with_its_headers_is_answered(api: Api) -> None:
    head, body = _poll(api)
    assert (await _exchange(api.client, head + body)).startswith(b"HTTP/1.1 200")


async def test_a_poll_whose_body_comes_after_its_headers_is_answered(api: Api) -> None:
    head, body = _poll(api)
    assert (await _exchange(api.client, head + body[:10], body[10:])).startswith(b"HTTP/1.1 200")


async def test_a_body_that_never_arrives_in_full_is_answered_408_at_the_deadline(
    config: Config, clock, aiohttp_client, pool  # type: ignore[no-untyped-def]
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(config, body_timeout_s=0.2), clock=clock,
                                             rng=random.Random(7)))
    api = Api(client, await storage.create_workspace(pool, "acme", identity_mode="off"))
    head, body = _poll(api, declared=1000)
    answer = await _exchange(client, head + body)
    assert answer.startswith(b"HTTP/1.1 408"), answer
