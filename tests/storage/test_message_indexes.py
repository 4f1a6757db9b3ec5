"""The indexes on `messages` after migration 0024 (decision 0035): fewer, and each query still on one.

A queued message without an idempotency key (every broadcast entry) is in no key index, keys
stay unique per workspace, and the one pending index by workspace and expiry serves the expiry
sweep, the disable recall and its count, with plans that read it rather than the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import storage
from storage.sql import queries
from tests.storage.test_claim_plan import NOW, seed


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def index_names(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'messages'")
    return {r["indexname"]: r["indexdef"] for r in rows}


async def test_only_given_keys_are_indexed_and_they_stay_unique(pool: asyncpg.Pool) -> None:
    indexes = await index_names(pool)
    assert "messages_idempotency_key" not in indexes
    assert "messages_pending_by_workspace" not in indexes
    assert "messages_pending_by_expiry" not in indexes
    assert indexes["messages_idempotency_key_given"].endswith(
        "(workspace_id, idempotency_key) WHERE (idempotency_key IS NOT NULL)"
    ), indexes["messages_idempotency_key_given"]
    assert "UNIQUE" in indexes["messages_idempotency_key_given"]

    first = (await storage.create_workspace(pool, "first")).workspace.id
    second = (await storage.create_workspace(pool, "second")).workspace.id
    person = await pool.fetchval("INSERT INTO people (workspace_id, external_id) VALUES ($1, 'p') RETURNING id", first)
    other = await pool.fetchval("INSERT INTO people (workspace_id, external_id) VALUES ($1, 'p') RETURNING id", second)
    insert = (
        "INSERT INTO messages (workspace_id, person_id, content, expires_at, idempotency_key)"
        " VALUES ($1, $2, '{}', now() + interval '1 day', $3)"
    )
    # Without a key, as many as you like; the same key in another workspace is another key.
    for _ in range(3):
        await pool.execute(insert, first, person, None)
    await pool.execute(insert, first, person, "k")
    await pool.execute(insert, second, other, "k")
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(insert, first, person, "k")
    assert await pool.fetchval("SELECT count(*) FROM messages") == 5


async def test_the_expiry_sweep_reaches_every_workspace_in_batches(pool: asyncpg.Pool) -> None:
    """Batches smaller than one workspace's backlog still expire everything due, and nothing else."""
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    workspaces = [(await storage.create_workspace(pool, f"ws{i}")).workspace.id for i in range(3)]
    for workspace_id in workspaces:
        person = await pool.fetchval(
            "INSERT INTO people (workspace_id, external_id) VALUES ($1, 'p') RETURNING id", workspace_id
        )
        await pool.execute(
            """
            INSERT INTO messages (workspace_id, person_id, state, content, expires_at, device_id, lease_expires_at)
            SELECT $1, $2, s.state, '{}', $3::timestamptz + s.offset_s * interval '1 second',
                   CASE WHEN s.state = 'offered' THEN 'd' END,
                   CASE WHEN s.state = 'offered' THEN $3::timestamptz - interval '1 hour' END
            FROM (VALUES ('queued', -10), ('offered', -5), ('queued', 0), ('queued', 1),
                         ('shown', -10), ('dismissed', -10)) AS s (state, offset_s)
            """,
            workspace_id, person, now,
        )

    batches = []
    while (expired := await storage.expire_messages(pool, batch=2, now=now)) > 0:
        batches.append(expired)
        assert len(batches) < 20, batches
    assert sum(batches) == 9, batches  # three due (expires_at <= now) in each of three workspaces
    states = await pool.fetch(
        "SELECT workspace_id, state, count(*) AS n FROM messages GROUP BY 1, 2 ORDER BY 1, 2"
    )
    for workspace_id in workspaces:
        mine = {r["state"]: r["n"] for r in states if r["workspace_id"] == workspace_id}
        assert mine == {"expired": 3, "queued": 1, "shown": 1, "dismissed": 1}, (workspace_id, mine)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'expired'") == 9
    # A message that expires later is swept once its time comes.
    assert await storage.expire_messages(pool, batch=10, now=now + timedelta(seconds=1)) == 3


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize(
    "statement, args",
    [
        ("expire_messages", lambda workspace_id: [NOW, 1000]),
        ("count_pending_messages", lambda workspace_id: [workspace_id, NOW]),
        # Disabling in-app messaging recalls the workspace's pending messages.
        ("update_workspace",
         lambda workspace_id: [workspace_id, False, *[None] * 6, NOW, None, None, None, None, None]),
    ],
)
async def test_pending_messages_are_found_by_workspace_and_expiry(
    pool: asyncpg.Pool, mode: str, statement: str, args: Any
) -> None:
    workspace_id, _ = await seed(pool)
    async with pool.acquire() as conn:
        await conn.execute(f"SET plan_cache_mode = {mode}")
        try:
            # EXPLAIN without ANALYZE plans the data-modifying CTEs without running them.
            plan = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) " + queries[statement], *args(workspace_id)
            )
        finally:
            await conn.execute("RESET plan_cache_mode")
    on_messages = [n for n in nodes(plan[0]["Plan"])
                   if n.get("Relation Name") == "messages" or n.get("Index Name", "").startswith("messages_")]
    by_index = [n for n in on_messages if n.get("Index Name") == "messages_pending_by_workspace_expiry"]
    assert by_index, [(n["Node Type"], n.get("Index Name")) for n in on_messages]
    assert all("workspace_id" in n.get("Index Cond", "") for n in by_index), by_index
    # No scan of the table picks pending messages by a filter (a join to rows already chosen, by
    # id, may read this small table whole: that is the planner's choice, and not this question).
    filtered = [n for n in on_messages if n["Node Type"] == "Seq Scan" and "Filter" in n]
    assert filtered == [], filtered
