"""Concurrent single sends share one statement (decision 0030), and each still gets its own answer.

Sends started together through one pool are coalesced: the wire counter shows fewer statements
than sends (the test fails if they are not coalesced), and each caller's outcome is what a send of
its own would have had.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

import storage
from tests.helpers import wait_until
from tests.storage.test_broadcast_round_trips import WireCounter, measure
from tests.storage.test_send_round_trips import message, wire

__all__ = ["wire"]


async def workspace_of(pool: asyncpg.Pool) -> int:
    return (await storage.create_workspace(pool, "w")).workspace.id


async def together(counted: asyncpg.Pool, workspace: int, sends: list[dict[str, Any]]) -> list[Any]:
    """Start every send at once; their outcomes (or exceptions), in order."""
    return await asyncio.gather(
        *(storage.send_message(counted, workspace, fields.pop("message", message()), **fields) for fields in sends),
        return_exceptions=True,
    )


async def test_sends_started_together_go_as_one_statement_each_with_its_own_message(
    wire: tuple[WireCounter, asyncpg.Pool], pool: asyncpg.Pool
) -> None:
    counter, counted = wire
    workspace = await workspace_of(pool)
    await storage.send_message(counted, workspace, message(), external_id="warm")
    people = [f"p{i}" for i in range(10)]
    usage, outcomes = await measure(counter, together(
        counted, workspace, [{"message": message(f"to {p}"), "external_id": p} for p in people]))

    assert usage.statements < len(people), usage  # coalesced: one statement, or a few
    assert [o.status for o in outcomes] == ["queued"] * len(people)
    assert [o.message.external_id for o in outcomes] == people
    assert [o.message.content["title"] for o in outcomes] == [f"to {p}" for p in people]
    assert len({o.message.id for o in outcomes}) == len(people)
    stored = await pool.fetch(
        "SELECT p.external_id, m.content->>'title' AS title FROM messages m JOIN people p ON p.id = m.person_id"
        " WHERE m.workspace_id = $1 AND p.external_id <> 'warm'", workspace)
    assert sorted((r["external_id"], r["title"]) for r in stored) == [(p, f"to {p}") for p in people]


async def test_the_same_person_twice_in_one_statement_gets_two_messages(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    outcomes = await together(pool, workspace, [
        {"message": message("first"), "external_id": "ada"},
        {"message": message("second"), "email": "Ada@Example.com"},
        {"message": message("third"), "external_id": "ada"},
    ])
    assert [o.status for o in outcomes] == ["queued"] * 3
    assert len({o.message.id for o in outcomes}) == 3
    assert await pool.fetchval("SELECT count(*) FROM people WHERE workspace_id = $1", workspace) == 2
    assert await pool.fetchval(
        "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message_id WHERE m.workspace_id = $1"
        " AND e.type = 'queued'", workspace) == 3


async def test_one_key_twice_in_one_statement_answers_as_two_separate_sends_would(
    wire: tuple[WireCounter, asyncpg.Pool], pool: asyncpg.Pool
) -> None:
    counter, counted = wire
    workspace = await workspace_of(pool)
    await storage.send_message(counted, workspace, message(), external_id="warm")
    same = storage.Idempotency("k", b"digest")
    other = storage.Idempotency("k", b"another body")
    usage, outcomes = await measure(counter, together(counted, workspace, [
        {"external_id": "ada", "idempotency": same},
        {"external_id": "ada", "idempotency": same},
        {"external_id": "ada", "idempotency": other},
        {"external_id": "bob", "idempotency": storage.Idempotency("j", b"digest")},
    ]))

    assert usage.statements <= 3, usage  # one statement, and a second round for the repeated key
    assert [o.status for o in outcomes] == ["queued", "replayed", "key_reused", "queued"]
    assert outcomes[1].message.id == outcomes[0].message.id
    assert outcomes[2].message is None
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE workspace_id = $1", workspace) == 3


async def test_a_disabled_workspace_refuses_every_send_of_the_statement(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    await pool.execute("UPDATE workspaces SET in_app_enabled = false WHERE id = $1", workspace)
    outcomes = await together(pool, workspace, [{"external_id": f"p{i}"} for i in range(5)])
    assert [o.status for o in outcomes] == ["disabled"] * 5
    assert await pool.fetchval("SELECT count(*) FROM people WHERE workspace_id = $1", workspace) == 0


async def test_a_send_the_database_refuses_fails_alone_and_the_others_are_queued(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    bad = storage.NewMessage({"title": "nul \u0000 inside", "body": "jsonb refuses it"}, ttl_s=3600)
    with pytest.raises(asyncpg.UntranslatableCharacterError):  # what the send does alone
        await storage.send_message(pool, workspace, bad, external_id="alone")

    outcomes = await together(pool, workspace, [
        {"external_id": "a"}, {"message": bad, "external_id": "b"}, {"external_id": "c"}])
    assert outcomes[0].status == outcomes[2].status == "queued"
    assert isinstance(outcomes[1], asyncpg.UntranslatableCharacterError)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE workspace_id = $1", workspace) == 2


async def test_an_unavailable_database_fails_every_send_with_storage_unavailable(database_url: str) -> None:
    counted = await storage.create_pool(database_url, min_size=1, max_size=1)
    try:
        admin = await storage.create_pool(database_url, min_size=1, max_size=1)
        workspace = await workspace_of(admin)
        await storage.send_message(counted, workspace, message(), external_id="warm")
        pid = await counted.fetchval("SELECT pg_backend_pid()")
        # Every statement of `counted` fails while its one connection is being killed: lock the
        # workspace row so the coalesced statement waits (FOR SHARE), then terminate it.
        async with admin.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE", workspace)
            sends = asyncio.ensure_future(together(counted, workspace, [{"external_id": f"p{i}"} for i in range(5)]))
            await wait_until(lambda: _waits_for_a_lock(conn, pid), what="the coalesced statement waits")
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
        outcomes = await asyncio.wait_for(sends, 10)
        assert all(isinstance(o, storage.StorageUnavailable) for o in outcomes), outcomes
        assert await admin.fetchval(
            "SELECT count(*) FROM messages WHERE workspace_id = $1", workspace) == 1  # the warm-up only
        await admin.close()
    finally:
        await counted.close()


async def _waits_for_a_lock(conn: asyncpg.Connection, pid: int) -> bool:
    waiting: bool = await conn.fetchval(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid)
    return waiting
