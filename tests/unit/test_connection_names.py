"""The connection guard hands aiohttp each connection's peer and socket names (gateway/http/connections.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.http.connections import MAX_SOCKNAMES, ConnectionGuard


class Handler:
    """What the guard needs of aiohttp's RequestHandler: the name cache and the callbacks it forwards."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}
        self.transport: object = None

    def connection_made(self, transport: object) -> None:
        self.transport = transport

    def connection_lost(self, exc: object) -> None:
        self.transport = None


class Transport:
    def __init__(self, peer: object, sock: object) -> None:
        self.extra = {"peername": peer, "sockname": sock}
        self.aborted = False

    def get_extra_info(self, name: str) -> object:
        value = self.extra[name]
        return tuple(value) if isinstance(value, tuple) else value  # a new object per call, as uvloop's

    def abort(self) -> None:
        self.aborted = True


def accept(guard: ConnectionGuard, peer: object, sock: object) -> Handler:
    handler = Handler()
    guard.wrap(lambda: handler)().connection_made(Transport(peer, sock))  # type: ignore[arg-type]
    return handler


async def test_every_connection_gets_its_own_peer_and_one_shared_socket_name() -> None:
    guard = ConnectionGuard(header_timeout_s=10, max_per_ip=0)
    first = accept(guard, ("10.0.0.7", 50001), ("127.0.0.1", 8080))
    second = accept(guard, ("10.0.0.8", 50002), ("127.0.0.1", 8080))
    ipv6 = accept(guard, ("::1", 50003, 0, 0), ("::1", 8080, 0, 0))

    assert first._cache["peername"] == ("10.0.0.7", 50001)
    assert second._cache["peername"] == ("10.0.0.8", 50002)
    assert ipv6._cache["peername"] == ("::1", 50003, 0, 0)
    assert first._cache["sockname"] == ("127.0.0.1", 8080)
    assert first._cache["sockname"] is second._cache["sockname"]
    assert ipv6._cache["sockname"] == ("::1", 8080, 0, 0)


async def test_socket_names_beyond_the_cap_are_still_right_and_not_kept() -> None:
    guard = ConnectionGuard(header_timeout_s=10, max_per_ip=0)
    handlers = [accept(guard, ("10.0.0.7", 50000 + i), (f"10.1.0.{i}", 8080)) for i in range(MAX_SOCKNAMES + 5)]

    assert [h._cache["sockname"] for h in handlers] == [(f"10.1.0.{i}", 8080) for i in range(MAX_SOCKNAMES + 5)]
    assert len(guard._socknames) == MAX_SOCKNAMES


@pytest.mark.parametrize("peer", [None, "", "/run/mailslot.sock"])
async def test_a_connection_without_an_address_leaves_the_peer_to_aiohttp(peer: object) -> None:
    guard = ConnectionGuard(header_timeout_s=10, max_per_ip=0)
    handler = accept(guard, peer, "/run/mailslot.sock")

    assert "peername" not in handler._cache
    assert handler._cache["sockname"] == "/run/mailslot.sock"
