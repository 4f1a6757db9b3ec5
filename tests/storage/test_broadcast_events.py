"""A broadcast records no `queued` event per entry (decision 0022), and every reader still says it was queued.

An entry's created_at is when it was queued. The readers of events (a message's events, the
delivery funnel) show it as the entry's `queued` event; entries queued before the change, which
recorded one, are not counted twice. Events that happen to one person's entry are still recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

import storage

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONTENT: dict[str, Any] = {"title": "Spring sale", "body": "20% off"}


async def broadcast(pool: asyncpg.Pool, workspace: int, ids: list[str], *, now: datetime = NOW,
                    campaign: str = "spring", render: Any = None) -> storage.Broadcast:
    outcome = await storage.send_broadcast(
        pool, workspace, storage.Audience(ids=tuple(ids)),
        storage.NewMessage(CONTENT, ttl_s=86400, campaign=campaign), render=render, now=now,
    )
    assert outcome.status == "queued" and outcome.broadcast is not None, outcome
    return outcome.broadcast


async def entry_of(pool: asyncpg.Pool, broadcast_id: Any, person: str) -> Any:
    return await pool.fetchval(
        "SELECT m.id FROM messages m JOIN people p ON p.id = m.person_id "
        "WHERE m.broadcast_id = $1 AND p.external_id = $2 ORDER BY m.created_at DESC LIMIT 1", broadcast_id, person)


async def test_a_broadcast_writes_no_event_rows_yet_each_entry_reads_as_queued(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "w")).workspace.id
    sent = await broadcast(pool, workspace, ["ada", "bob", "cyd"])
    assert sent.queued == 3
    assert await pool.fetchval("SELECT count(*) FROM events WHERE workspace_id = $1", workspace) == 0

    ada = await entry_of(pool, sent.id, "ada")
    events = await storage.list_message_events(pool, ada)
    assert [(e.type, e.at, e.device_id, e.action) for e in events] == [("queued", NOW, None, None)]

    later = NOW + timedelta(seconds=5)
    claim = await storage.claim_messages(pool, workspace, "ada", "phone", lease_s=300, now=later)
    assert [m.id for m in claim.messages] == [ada]
    await storage.record_device_events(pool, workspace, "ada", "phone", [storage.DeviceReport(ada, "shown")],
                                       now=later)
    assert [(e.type, e.at) for e in await storage.list_message_events(pool, ada)] == [
        ("queued", NOW), ("offered", later), ("shown", later)]
    # Events that happen to one person's entry are that entry's alone.
    bob = await entry_of(pool, sent.id, "bob")
    assert [e.type for e in await storage.list_message_events(pool, bob)] == ["queued"]


async def test_personalized_broadcasts_and_resends_read_as_queued_too(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "w")).workspace.id

    async def render(people: list[storage.AudienceMember]) -> list[dict[str, Any]]:
        return [{"title": f"Hi {p.external_id}", "body": "x"} for p in people]

    sent = await broadcast(pool, workspace, ["ada", "bob"], render=render)
    later = NOW + timedelta(hours=1)
    resent = await storage.resend_broadcast(pool, workspace, sent.id, later)
    assert resent.status == "resent"
    rows = await pool.fetch("SELECT id, created_at FROM messages WHERE broadcast_id = $1", sent.id)
    assert len(rows) == 4
    for row in rows:
        events = await storage.list_message_events(pool, row["id"])
        assert [(e.type, e.at) for e in events] == [("queued", row["created_at"])]
    assert {r["created_at"] for r in rows} == {NOW, later}


async def test_an_entry_that_recorded_its_queued_event_is_not_counted_twice(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "w")).workspace.id
    sent = await broadcast(pool, workspace, ["ada"])
    ada = await entry_of(pool, sent.id, "ada")
    # As a broadcast queued before decision 0022 left it.
    await pool.execute("INSERT INTO events (workspace_id, message_id, type, at) VALUES ($1, $2, 'queued', $3)",
                       workspace, ada, NOW)
    assert [e.type for e in await storage.list_message_events(pool, ada)] == ["queued"]
    funnel = await storage.count_funnel_events(pool, workspace, broadcast_id=sent.id, bucket_s=3600)
    assert [(f.type, f.count) for f in funnel] == [("queued", 1)]


async def test_the_funnel_counts_broadcast_entries_and_single_sends_of_a_campaign(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "w")).workspace.id
    sent = await broadcast(pool, workspace, ["ada", "bob", "cyd"])
    single = await storage.send_message(pool, workspace, storage.NewMessage(CONTENT, ttl_s=3600, campaign="spring"),
                                        external_id="dee", now=NOW + timedelta(minutes=1))
    assert single.status == "queued"
    later = NOW + timedelta(minutes=2)
    ada = await entry_of(pool, sent.id, "ada")
    await storage.claim_messages(pool, workspace, "ada", "phone", lease_s=300, now=later)
    await storage.record_device_events(pool, workspace, "ada", "phone", [storage.DeviceReport(ada, "shown")],
                                       now=later)

    by_broadcast = await storage.count_funnel_events(pool, workspace, broadcast_id=sent.id, bucket_s=3600)
    assert {(f.bucket, f.type, f.count) for f in by_broadcast} == {(NOW, "queued", 3), (NOW, "shown", 1)}
    by_campaign = await storage.count_funnel_events(pool, workspace, campaign="spring", bucket_s=3600)
    assert {(f.bucket, f.type, f.count) for f in by_campaign} == {(NOW, "queued", 4), (NOW, "shown", 1)}
