"""A new pool connection comes with a woken held poll's statements prepared (storage/pool.py).

Bench s7: when sends began, every pool connection met the claim and the report of what a device
showed for the first time, each first use a Parse plus, for the report's array parameters,
asyncpg's type introspection, all during the burst of woken polls; connections were held up to
1.2 s and acquires waited up to 0.9 s of their 2 s bound.
"""

from __future__ import annotations

import uuid

import asyncpg

import storage
from storage.pool import WARM_STATEMENTS


async def prepared(conn: asyncpg.Connection) -> set[str]:
    return {row["statement"] for row in await conn.fetch("SELECT statement FROM pg_prepared_statements")}


async def test_a_new_connection_has_the_held_poll_statements_prepared(database_url: str) -> None:
    pool = await storage.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            assert set(WARM_STATEMENTS) <= await prepared(conn)
    finally:
        await pool.close()


async def test_the_first_claim_and_report_on_a_connection_prepare_nothing_more(database_url: str) -> None:
    pool = await storage.create_pool(database_url, min_size=1, max_size=1)
    try:
        workspace = (await storage.create_workspace(pool, "warm")).workspace.id
        async with pool.acquire() as conn:
            before = await prepared(conn)
            claim = await storage.claim_messages(conn, workspace, "someone", "web-1", lease_s=60)
            assert claim.messages == ()
            after_claim = await prepared(conn)
        rejected = await storage.record_device_events(
            pool, workspace, "someone", "web-1", [storage.DeviceReport(uuid.uuid4(), "shown")],
        )
        assert rejected == ["unknown_message"]
        async with pool.acquire() as conn:
            after_report = await prepared(conn)
        # The only statement prepared since is the test's own look at pg_prepared_statements.
        assert after_claim - before <= {"SELECT statement FROM pg_prepared_statements"}
        assert after_report == after_claim
    finally:
        await pool.close()
