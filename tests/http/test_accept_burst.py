"""A worker takes every connection waiting in the backlog in one turn of its loop, not one per turn
(gateway/http/connections.py, docs/decisions/0044-accept-every-queued-connection.md).

uvloop 0.23 accepts one connection per turn: a loaded worker whose loop turned every 100 ms took
about ten new connections a second, and a reconnect burst's requests waited in the backlog for
seconds. The tests count the loop's turns, never time.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from tests.helpers import wait_until
from tests.http.test_connection_cap import Client, Worker, listening  # noqa: F401 (the fixture)

QUEUED = 100  # within the listening fixture's backlog (128), or connect() waits for an accept
# The accept, the hand-over to the loop, connection_made: a few turns, whatever the burst's size.
MOST_TURNS = 6


async def turns_until(condition: Callable[[], bool], *, most: int = 10_000) -> int:
    """The loop's turns until `condition` holds: a callback that schedules itself runs once per turn."""
    loop = asyncio.get_running_loop()
    counted: asyncio.Future[int] = loop.create_future()
    turns = 0

    def tick() -> None:
        nonlocal turns
        turns += 1
        if condition() or turns >= most:
            counted.set_result(turns)
        else:
            loop.call_soon(tick)

    loop.call_soon(tick)
    return await counted


def queue_connections(port: int, count: int) -> list[socket.socket]:
    """Connect while the loop cannot turn: the kernel completes each handshake into the backlog."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


async def test_a_burst_of_queued_connections_is_accepted_in_a_few_turns(listening: socket.socket) -> None:  # noqa: F811
    port = listening.getsockname()[1]
    worker = Worker("only", listening, max_connections=0)
    await worker.start()
    queued = queue_connections(port, QUEUED)
    try:
        turns = await turns_until(lambda: len(worker.guard) == QUEUED)
        assert len(worker.guard) == QUEUED
        assert turns <= MOST_TURNS, f"{QUEUED} queued connections took {turns} turns of the loop"
        # Every one of them is served.
        clients = [Client(*await asyncio.open_connection(sock=sock)) for sock in queued[:5]]
        assert [await c.who() for c in clients] == ["only"] * 5
        for client in clients:
            await client.close()
    finally:
        for sock in queued:
            sock.close()
        await worker.stop()


async def test_a_burst_past_the_cap_fills_the_worker_and_leaves_the_rest_queued(
    listening: socket.socket,  # noqa: F811
) -> None:
    port = listening.getsockname()[1]
    full = Worker("full", listening, max_connections=10)
    await full.start()
    queued = queue_connections(port, 30)
    other = Worker("other", listening, max_connections=0)
    try:
        await wait_until(lambda: full.guard.full, what="the worker is full")
        assert len(full.guard) == 10
        assert full.site is not None and not full.site.accepting
        # None was accepted only to be closed: the other 20 still wait, for a worker with room.
        await other.start()
        await wait_until(lambda: len(other.guard) == 20, what="the other worker takes the other 20")
        assert len(full.guard) == 10
    finally:
        for sock in queued:
            sock.close()
        await full.stop()
        await other.stop()
