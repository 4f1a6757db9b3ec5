"""The connection guard's header deadline (gateway/http/connections.py): one timer per connection,
moved on rather than made and cancelled per request, and no timer at all while a poll is held."""

from __future__ import annotations

import asyncio

from gateway.http.connections import ConnectionGuard
from tests.helpers import wait_until

DEADLINE_S = 0.05


class Transport:
    def __init__(self) -> None:
        self.aborted = asyncio.get_running_loop().create_future()

    def get_extra_info(self, name: str) -> object:
        return ("10.0.0.7", 50000) if name == "peername" else ("127.0.0.1", 8080)

    def is_closing(self) -> bool:
        return self.aborted.done()

    def abort(self) -> None:
        if not self.aborted.done():
            self.aborted.set_result(True)


class Handler:
    """aiohttp's RequestHandler as the guard sees it; counts the calls that cancel its keep-alive timer."""

    def __init__(self) -> None:
        self._cache: dict[str, object] = {}
        self.keep_alive_calls: list[bool] = []

    def connection_made(self, transport: object) -> None:
        pass

    def connection_lost(self, exc: object) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pass

    def keep_alive(self, value: bool) -> None:
        self.keep_alive_calls.append(value)


def connect(timeout_s: float = DEADLINE_S) -> tuple[ConnectionGuard, object, Transport, Handler]:
    guard = ConnectionGuard(header_timeout_s=timeout_s, max_per_ip=0)
    handler, transport = Handler(), Transport()
    protocol = guard.wrap(lambda: handler)()  # type: ignore[arg-type,return-value]
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return guard, protocol, transport, handler


async def test_headers_that_never_end_close_the_connection_at_the_deadline() -> None:
    _guard, protocol, transport, _ = connect()
    protocol.data_received(b"GET /healthz HTTP/1.1\r\nX-a: ")  # type: ignore[attr-defined]

    assert await asyncio.wait_for(transport.aborted, 5)


async def test_a_running_request_is_never_cut_and_the_next_one_s_headers_get_a_deadline_of_their_own() -> None:
    guard, protocol, transport, handler = connect()
    guard.request_started(transport)  # type: ignore[arg-type]
    # The timer fires during the request, finds nothing to check, and goes.
    await wait_until(lambda: protocol._timer is None, within=5)  # type: ignore[attr-defined]
    assert not transport.aborted.done()
    guard.request_finished(transport)  # type: ignore[arg-type]

    protocol.data_received(b"POST /v1/poll HTTP/1.1\r\nX-a: ")  # type: ignore[attr-defined]
    assert await asyncio.wait_for(transport.aborted, 5)
    assert handler.keep_alive_calls == []


async def test_a_deadline_moved_by_a_later_request_is_checked_again_not_enforced_early() -> None:
    guard, protocol, transport, _ = connect(timeout_s=30)
    guard.request_started(transport)  # type: ignore[arg-type]
    guard.request_finished(transport)  # type: ignore[arg-type]
    protocol.data_received(b"POST /v1/poll HTTP/1.1\r\n")  # type: ignore[attr-defined]
    first = protocol._timer  # type: ignore[attr-defined]
    assert first is not None  # the connection's timer, made when it opened, serves this request too

    first.cancel()
    protocol._expired()  # type: ignore[attr-defined]  # as if it fired at its first time, before this deadline

    assert not transport.aborted.done()
    assert protocol._timer is not None and protocol._timer is not first  # type: ignore[attr-defined]
    protocol.connection_lost(None)  # type: ignore[attr-defined]
    assert protocol._timer is None  # type: ignore[attr-defined]


async def test_short_requests_keep_one_timer_and_leave_aiohttp_s_keep_alive_timer_alone() -> None:
    guard, protocol, transport, handler = connect(timeout_s=30)
    timer = protocol._timer  # type: ignore[attr-defined]
    for _ in range(3):
        protocol.data_received(b"POST /v1/poll HTTP/1.1\r\n\r\n{}")  # type: ignore[attr-defined]
        guard.request_started(transport)  # type: ignore[arg-type]
        guard.request_finished(transport)  # type: ignore[arg-type]

    assert protocol._timer is timer  # type: ignore[attr-defined]
    assert handler.keep_alive_calls == []
    protocol.connection_lost(None)  # type: ignore[attr-defined]


async def test_a_held_request_keeps_no_timer() -> None:
    guard, protocol, transport, handler = connect()
    protocol.data_received(b"POST /v1/poll HTTP/1.1\r\n\r\n{}")  # type: ignore[attr-defined]
    guard.request_started(transport)  # type: ignore[arg-type]

    guard.request_held(transport)  # type: ignore[arg-type]

    assert protocol._timer is None  # type: ignore[attr-defined]
    assert handler.keep_alive_calls == [True]  # aiohttp's keep-alive timer cancelled, the flag unchanged
    guard.request_finished(transport)  # type: ignore[arg-type]
    protocol.data_received(b"POST /v1/poll HTTP/1.1\r\nX-a: ")  # type: ignore[attr-defined]
    assert await asyncio.wait_for(transport.aborted, 5)
