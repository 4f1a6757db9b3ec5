"""The claim's plan: with realistic data, a poll reads one person's messages through an index.

A sequential scan on `messages` would make every poll cost as much as the whole table, so the
plan is checked both as the first executions see it (custom plan) and as a prepared statement
does after a few (generic plan). The claim is the body of `mailslot_claim_messages_v2`
(migration 0028), which PostgreSQL caches and plans as it does a prepared statement; both
`claim_messages` and `claim_message_batch` call it (decisions 0037, 0045).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

import storage
from storage.sql import queries

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PEOPLE = 1500
MESSAGES_PER_PERSON = 4
WORKSPACES = 3


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def summary(node: dict[str, Any]) -> tuple[str, str | None, str | None]:
    return node["Node Type"], node.get("Index Name"), node.get("Index Cond") or node.get("Recheck Cond")


async def seed(pool: asyncpg.Pool) -> tuple[int, str]:
    """Several workspaces; many people; most messages long closed, some queued, offered, shown."""
    workspace_ids = [(await storage.create_workspace(pool, f"ws{i}")).workspace.id for i in range(WORKSPACES)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO people (workspace_id, external_id, email)
            SELECT w, 'user-' || w || '-' || i, 'user' || w || '.' || i || '@example.com'
            FROM unnest($1::bigint[]) AS w, generate_series(1, $2) AS i
            """,
            workspace_ids, PEOPLE,
        )
        await conn.execute(
            """
            INSERT INTO messages (workspace_id, person_id, state, content, priority, persistent, device_id,
                                  lease_expires_at, created_at, expires_at, shown_at, closed_at)
            SELECT p.workspace_id, p.id, s.state, '{"title": "hi"}', (n % 3), (n % 2 = 0),
                   CASE WHEN s.state <> 'queued' THEN 'device-' || (n % 2) END,
                   CASE WHEN s.state = 'offered' THEN $1::timestamptz + interval '1 minute' END,
                   $1::timestamptz - make_interval(days => n * 9 + (p.id % 7)::int),
                   $1::timestamptz + interval '30 days' - make_interval(days => n * 9),
                   CASE WHEN s.state IN ('shown', 'dismissed') THEN $1::timestamptz - make_interval(days => n) END,
                   CASE WHEN s.state IN ('dismissed', 'expired') THEN $1::timestamptz - make_interval(days => n) END
            FROM people p
            CROSS JOIN generate_series(1, $2) AS n
            CROSS JOIN LATERAL (
                SELECT (ARRAY['dismissed', 'dismissed', 'expired', 'shown', 'dismissed', 'dismissed', 'recalled',
                              'queued', 'dismissed', 'offered'])[1 + ((p.id * 7 + n) % 10)::int] AS state
            ) s
            """,
            NOW, MESSAGES_PER_PERSON,
        )
        await conn.execute(
            "INSERT INTO events (workspace_id, message_id, type, at) SELECT workspace_id, id, 'queued', created_at"
            " FROM messages"
        )
        # Anonymous visitors beside the people, and an open visit broadcast in every workspace.
        await conn.execute(
            """
            INSERT INTO people (workspace_id, anonymous_id)
            SELECT w, 'anon_visitor' || w || 'x' || i
            FROM unnest($1::bigint[]) AS w, generate_series(1, $2) AS i
            """,
            workspace_ids, PEOPLE,
        )
        await conn.execute(
            """
            INSERT INTO broadcasts (workspace_id, audience, content, visit_ends_at, visit_every_s)
            SELECT w, '{"visitors": true}', '{"title": "hi"}', $2::timestamptz + interval '1 day', 3600
            FROM unnest($1::bigint[]) AS w
            """,
            workspace_ids, NOW,
        )
        await conn.execute("ANALYZE")
    return workspace_ids[1], f"user-{workspace_ids[1]}-{PEOPLE // 2}"


@pytest.mark.parametrize("who", ["person", "visitor"])
@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_the_claim_reads_one_persons_messages_by_index(pool: asyncpg.Pool, mode: str, who: str) -> None:
    workspace_id, user = await seed(pool)
    # A person polls by id; a visitor by its anonymous id, with no user (decision 0023).
    user_arg, anonymous_arg = (f"'{user}'", "NULL") if who == "person" else ("NULL", f"'anon_visitor{workspace_id}x7'")
    assert await pool.fetchval("SELECT count(*) FROM messages") == WORKSPACES * PEOPLE * MESSAGES_PER_PERSON

    async with pool.acquire() as conn:
        # As the gateway runs it: a prepared statement, whose plan PostgreSQL may make generic
        # after five executions. EXPLAIN without ANALYZE plans the data-modifying CTEs without
        # running them.
        body = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'mailslot_claim_messages_v2'")
        await conn.execute(
            "PREPARE claim_plan (bigint, text, text, timestamptz, integer, integer, text) AS " + body
        )
        try:
            await conn.execute(f"SET plan_cache_mode = {mode}")
            # Literals: EXPLAIN EXECUTE takes no protocol parameters (the values are this test's own).
            plan = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE claim_plan"
                f" ({workspace_id}, {user_arg}, 'device-0', '{NOW.isoformat()}', 300, 10, {anonymous_arg})"
            )
        finally:
            await conn.execute("RESET plan_cache_mode; DEALLOCATE claim_plan")
    root = plan[0]["Plan"]  # the pool decodes json
    all_nodes = list(nodes(root))
    on_messages = [n for n in all_nodes if n.get("Relation Name") == "messages"]
    on_people = [n for n in all_nodes if n.get("Relation Name") == "people"]

    assert on_messages, "the plan does not read messages at all"
    seq_scans = [n for n in on_messages + on_people if n["Node Type"] == "Seq Scan"]
    assert seq_scans == [], [(n["Relation Name"], n.get("Filter")) for n in seq_scans]
    assert any(n.get("Index Name") == "messages_pending_by_person" for n in on_messages), [
        summary(n) for n in on_messages
    ]
    # Every read of messages is keyed by the person the first CTE found, or by a claimed row's id.
    for node in (n for n in on_messages if n["Node Type"].endswith("Scan")):
        condition = node.get("Index Cond") or node.get("Recheck Cond") or ""
        assert "person_id" in condition or node.get("Index Name") == "messages_pkey", summary(node)


async def test_the_batch_finds_each_person_by_index(pool: asyncpg.Pool) -> None:
    """The batch statement's own read (each poll's person, for the lock order) is an index lookup."""
    workspace_id, user = await seed(pool)
    async with pool.acquire() as conn:
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) " + queries["claim_message_batch"].rstrip(";"),
            [workspace_id, workspace_id], [user, None], ["device-0", "device-1"], [NOW, NOW], [300, 300],
            [10, 10], [None, f"anon_visitor{workspace_id}x7"],
        )
    on_people = [n for n in nodes(plan[0]["Plan"]) if n.get("Relation Name") == "people"]
    assert on_people, "the batch does not look people up"
    assert [n for n in on_people if n["Node Type"] == "Seq Scan"] == [], [summary(n) for n in on_people]


async def test_the_claim_still_works_on_that_data(pool: asyncpg.Pool) -> None:
    """The plan above is for a statement that does its job: the seeded person's queue is claimed."""
    workspace_id, user = await seed(pool)
    claim = await storage.claim_messages(pool, workspace_id, user, "device-9", lease_s=300, now=NOW)
    assert claim.person_id is not None
    deliverable = await pool.fetchval(
        """
        SELECT count(*) FROM messages m JOIN people p ON p.id = m.person_id
        WHERE p.external_id = $1 AND m.expires_at > $2
          AND (m.state = 'queued' OR (m.state = 'offered' AND m.lease_expires_at <= $2))
        """,
        user, NOW,
    )
    # Plus the copy of the workspace's open visit broadcast, which the person enters on this poll.
    assert len([m for m in claim.messages if m.offered]) == min(deliverable, 10) + 1
