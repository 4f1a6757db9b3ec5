"""A multi-host database URL, as a gateway in front of a Patroni cluster uses it (deploy/README.md).

`postgresql://…@host1:port1,host2:port2/db?target_session_attrs=read-write`: asyncpg tries the
hosts in order and keeps the first that accepts writes. Here the first host refuses connections
(a dead node) and the second is the test server; the real cluster is tests/failover's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import storage
from storage.notices import NOTIFY_CHANNEL, Notice
from tests.acceptance.test_cli import free_port

WAIT_S = 10.0


def multi_host(database_url: str, *, dead_first: bool = True) -> str:
    """`database_url` behind a first host where nothing listens, asking for a writable server."""
    parts = urlsplit(database_url)
    credentials, _, address = parts.netloc.rpartition("@")
    hosts = f"127.0.0.1:{free_port()},{address}" if dead_first else address
    return urlunsplit(parts._replace(netloc=f"{credentials}@{hosts}", query="target_session_attrs=read-write"))


@pytest.fixture
async def multi_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await storage.create_pool(multi_host(database_url), min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_pool_on_a_multi_host_url_skips_a_dead_host(multi_pool: asyncpg.Pool) -> None:
    made = await storage.create_workspace(multi_pool, "acme")
    found = await storage.get_workspace_by_site_id(multi_pool, made.workspace.site_id)
    assert found is not None and found.id == made.workspace.id


async def test_no_writable_host_is_unavailable_until_one_is(database_url: str) -> None:
    """Mid-failover every host may still be read-only: a 503 to retry, not a crash."""
    admin = await asyncpg.connect(database_url)
    name = await admin.fetchval("SELECT current_database()")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        with pytest.raises(storage.StorageUnavailable, match="TargetServerAttributeNotMatched"):
            await storage.create_pool(multi_host(database_url, dead_first=False), min_size=1, max_size=1)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await admin.close()
    pool = await storage.create_pool(multi_host(database_url, dead_first=False), min_size=1, max_size=1)
    try:
        await storage.create_workspace(pool, "acme")
    finally:
        await pool.close()


async def test_the_listener_follows_the_url_and_wakes_everyone_on_each_connect(
    database_url: str, multi_pool: asyncpg.Pool,
) -> None:
    """After a reconnect (a new primary), `on_connect` runs again: notices sent meanwhile were lost."""
    connects: asyncio.Queue[None] = asyncio.Queue()
    notices: asyncio.Queue[Notice] = asyncio.Queue()
    listener = storage.Listener(multi_host(database_url), notices.put_nowait, lambda: connects.put_nowait(None))
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(connects.get(), WAIT_S)
        made = await storage.create_workspace(multi_pool, "acme")
        await multi_pool.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL,
                                 f'{{"type": "workspace", "workspace": {made.workspace.id}}}')
        assert isinstance(await asyncio.wait_for(notices.get(), WAIT_S), storage.WorkspaceNotice)
        # The primary goes away under the listener: it reconnects, says so, and hears again.
        first = listener.backend_pid
        await multi_pool.execute("SELECT pg_terminate_backend($1)", first)
        await asyncio.wait_for(connects.get(), WAIT_S)
        assert listener.backend_pid != first
        await multi_pool.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL,
                                 f'{{"type": "workspace", "workspace": {made.workspace.id}}}')
        assert isinstance(await asyncio.wait_for(notices.get(), WAIT_S), storage.WorkspaceNotice)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
