"""A listener told to stop stops, even when its connection is lost in the same moment.

An app shutting down while its database goes away (a restart, a failover, a dropped test
database) cancels the listener just as the connection's loss wakes it. Python 3.11's
`asyncio.wait_for` returns the inner result in that race and drops the cancellation; a listener
waiting that way went on reconnecting forever, and the app's cleanup waited for it forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from storage.listener import Listener

STOP_BOUND_S = 10.0


async def started(
    database_url: str, on_disconnect: Callable[[], None] | None = None
) -> tuple[Listener, asyncio.Task[None]]:
    connected = asyncio.Event()
    listener = Listener(database_url, lambda _notice: None, connected.set, on_disconnect=on_disconnect,
                        probe_interval_s=30.0)
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(connected.wait(), STOP_BOUND_S)
    return listener, task


async def stopped(task: asyncio.Task[None]) -> bool:
    done, _ = await asyncio.wait([task], timeout=STOP_BOUND_S)
    if task not in done:
        task.cancel()  # a second cancel, so that the test's own loop can close
        await asyncio.wait([task], timeout=1)
        return False
    return task.cancelled()


async def test_a_listener_cancelled_in_the_turn_its_connection_is_lost_stops(
    database_url: str, pool: asyncpg.Pool
) -> None:
    listener, task = await started(database_url)
    conn = listener._conn
    assert conn is not None
    # asyncpg calls termination callbacks (a set: either order) in one turn of the loop; one turn
    # later the listener's wait for the loss has finished but not yet returned, and the stop lands.
    loop = asyncio.get_running_loop()
    conn.add_termination_listener(lambda _conn: loop.call_soon(task.cancel))

    await pool.execute("SELECT pg_terminate_backend($1)", listener.backend_pid)

    assert await stopped(task), "the listener went on after it was cancelled"


async def test_a_listener_cancelled_while_it_waits_to_reconnect_stops(database_url: str, pool: asyncpg.Pool) -> None:
    disconnected = asyncio.Event()
    listener, task = await started(database_url, disconnected.set)

    await pool.execute("SELECT pg_terminate_backend($1)", listener.backend_pid)
    await asyncio.wait_for(disconnected.wait(), STOP_BOUND_S)
    task.cancel()

    assert await stopped(task)
