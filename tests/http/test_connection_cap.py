"""A process at its connection cap stops accepting, so that its file descriptors stay free for its
database connections and another worker takes the new connections (gateway/http/connections.py,
docs/decisions/0036-connections-per-worker.md).

Bench s7 found one of ten workers holding 19,964 of 100,000 held polls against an open-files
limit of 20,000: its pool could not open a connection (503) and new clients were reset.
"""

from __future__ import annotations

import socket

import pytest

from gateway.http.connections import RESERVED_FILES, ConnectionGuard, connection_limit
from tests.helpers import wait_until
from tests.http.workers import Client, Worker


async def test_a_full_worker_stops_accepting_and_another_takes_the_connection(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    full, other = Worker("full", listening, max_connections=2), Worker("other", listening, max_connections=0)
    await full.start()
    clients: list[Client] = []
    try:
        clients += [await Client.connect(port), await Client.connect(port)]
        assert [await c.who() for c in clients] == ["full", "full"]
        assert full.guard.full and full.site is not None and not full.site.accepting

        await other.start()  # only now a second worker listens: the next connection can only go there
        clients.append(await Client.connect(port))
        assert await clients[-1].who() == "other"
        assert len(full.guard) == 2

        await clients.pop(0).close()  # room again: the full worker accepts once more
        await wait_until(lambda: full.site is not None and full.site.accepting, what="the worker accepts again")
        await other.stop()
        clients.append(await Client.connect(port))
        assert await clients[-1].who() == "full"
        assert await clients[0].who() == "full"  # the connections it kept were served all along
    finally:
        for client in clients:
            await client.close()
        await full.stop()
        await other.stop()


async def test_a_worker_without_a_cap_accepts_every_connection(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    worker = Worker("only", listening, max_connections=0)
    await worker.start()
    clients = [await Client.connect(port) for _ in range(5)]
    try:
        assert [await c.who() for c in clients] == ["only"] * 5
        assert not worker.guard.full
    finally:
        for client in clients:
            await client.close()
        await worker.stop()


class Transport:
    """What the guard needs of a transport."""

    def __init__(self) -> None:
        self.aborted = False

    def get_extra_info(self, name: str) -> object:
        return ("10.0.0.7", 50000) if name == "peername" else ("127.0.0.1", 8080)

    def abort(self) -> None:
        self.aborted = True


class Handler:
    def __init__(self) -> None:
        self._cache: dict[str, object] = {}
        self.connected = False

    def connection_made(self, transport: object) -> None:
        self.connected = True

    def connection_lost(self, exc: object) -> None:
        self.connected = False

    def keep_alive(self, value: bool) -> None:
        pass


async def test_connections_accepted_past_the_cap_in_one_batch_are_closed_and_room_resumes() -> None:
    switched: list[bool] = []
    guard = ConnectionGuard(header_timeout_s=30, max_per_ip=0, max_connections=2)
    guard.on_accepting(switched.append)
    protocols, transports, handlers = [], [], []
    for _ in range(3):
        handler, transport = Handler(), Transport()
        protocol = guard.wrap(lambda h=handler: h)()  # type: ignore[misc]
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocols.append(protocol)
        transports.append(transport)
        handlers.append(handler)

    assert [t.aborted for t in transports] == [False, False, True]
    assert [h.connected for h in handlers] == [True, True, False]
    assert switched == [False] and guard.full and len(guard) == 2

    protocols[2].connection_lost(None)  # the refused one: nothing changes
    assert switched == [False] and len(guard) == 2
    protocols[0].connection_lost(None)
    assert switched == [False, True] and not guard.full and len(guard) == 1


@pytest.mark.parametrize(("open_files", "pool_max", "expected"), [
    (20_000, 10, 20_000 - 10 - RESERVED_FILES),
    (1_048_576, 50, 1_048_576 - 50 - RESERVED_FILES),
    (60, 10, 1),  # a tiny limit still takes a connection
])
def test_the_cap_leaves_room_for_the_pool_and_the_process_s_own_files(
    open_files: int, pool_max: int, expected: int,
) -> None:
    assert connection_limit(open_files, pool_max) == expected

