"""A stalled or busy database is answered at once as 503 with Retry-After: never a hang, never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway import Config
from gateway.http.keys import POOL
from tests.helpers import Api

ACQUIRE_S = 0.5
STATEMENT_S = 1.0
# Generous: the point is "an answer, not a hang", never a measure of speed.
NO_HANG_S = 20


@pytest.fixture
def config(database_url: str) -> Config:
    # Every connection of the pool open from the start, so pausing them pauses the gateway.
    return Config(
        database_url=database_url, pool_min=2, pool_max=2, demo_workspace=False, expire_interval_s=3600,
        db_acquire_timeout_s=ACQUIRE_S, db_statement_timeout_s=STATEMENT_S,
    )


def assert_unavailable(reply) -> None:  # type: ignore[no-untyped-def]
    assert reply.status == 503, reply
    assert reply.error_code == "storage_unavailable"
    assert int(reply.headers["Retry-After"]) >= 1


@contextlib.asynccontextmanager
async def paused_backends(database_url: str) -> AsyncIterator[list[int]]:
    """SIGSTOP the server processes of this test's database (the gateway's connections), then SIGCONT.

    The same stall as a paused server or VM, limited to this test's own connections: other tests'
    databases on the shared server are untouched. Always resumed, however the test ends.
    """
    conn = await asyncpg.connect(database_url)
    try:
        pids = [r["pid"] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )]
    finally:
        await conn.close()
    assert pids, "the gateway holds no connection to pause"
    stopped: list[int] = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield pids
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def test_a_poll_on_a_stalled_database_is_a_503_not_a_hang(api: Api, database_url: str) -> None:
    await api.send("ada")
    assert (await api.poll("someone-else", "warm-up")).status == 200  # the workspace is cached from now on
    async with paused_backends(database_url):
        polled = await asyncio.wait_for(api.poll("ada", "phone", wait=0), NO_HANG_S)
        assert_unavailable(polled)
    # A timed-out connection may be replaced by a fresh one: pause whatever the pool holds now.
    key = {"Idempotency-Key": "sent-while-stalled"}
    async with paused_backends(database_url):
        sent = await asyncio.wait_for(api.send("ada", headers=key), NO_HANG_S)
        assert_unavailable(sent)
    # Once the database answers again, so does the gateway, and nothing was lost or doubled. A send
    # answered 503 may have committed when the database resumed (its statement had reached the
    # server; decision 0016): the client's retry with the same key is what makes it exactly once.
    retried = await api.send("ada", headers=key)
    assert retried.status in (200, 201), retried
    polled = await api.poll("ada", "phone")
    assert polled.status == 200, polled
    assert len(polled.body["messages"]) == 2


async def test_an_exhausted_pool_is_a_503_not_a_hang(client, api: Api) -> None:  # type: ignore[no-untyped-def]
    await api.send("ada")
    assert (await api.poll("someone-else", "warm-up")).status == 200
    pool = client.server.app[POOL]
    held = [await pool.acquire(timeout=5) for _ in range(2)]
    try:
        polled = await asyncio.wait_for(api.poll("ada", "phone", wait=0), NO_HANG_S)
        assert_unavailable(polled)
        held_poll = await asyncio.wait_for(api.poll("ada", "phone", wait=5), NO_HANG_S)
        assert_unavailable(held_poll)
    finally:
        for conn in held:
            await pool.release(conn)
    polled = await api.poll("ada", "phone")
    assert polled.status == 200
    assert len(polled.body["messages"]) == 1


async def test_a_statement_blocked_by_a_lock_is_a_503_not_a_hang(api: Api, database_url: str) -> None:
    """A send waits on the workspace row; another session holds it (a long PATCH, a migration)."""
    assert (await api.poll("someone-else", "warm-up")).status == 200
    blocker = await asyncpg.connect(database_url)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE", api.workspace.id)
        sent = await asyncio.wait_for(api.send("ada"), NO_HANG_S)
        assert_unavailable(sent)
        await transaction.rollback()
    finally:
        await blocker.close()
    sent = await api.send("ada")
    assert sent.status == 201, sent
    # The refused send left nothing behind: exactly one message reaches the device.
    assert len((await api.poll("ada", "phone")).body["messages"]) == 1
