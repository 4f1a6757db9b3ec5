"""Storage functions called directly: what the gateway relies on, without HTTP in between."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

import storage
from storage import DeviceReport
from storage.sql import queries

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def send(
    pool: asyncpg.Pool, workspace_id: int, user: str, *, now: datetime = NOW, ttl_s: int = 86400
) -> storage.Message:
    message = storage.NewMessage({"title": "Hi"}, ttl_s=ttl_s)
    outcome = await storage.send_message(pool, workspace_id, message, external_id=user, now=now)
    assert outcome.status == "queued" and outcome.message is not None, outcome
    return outcome.message


async def count(pool: asyncpg.Pool, table: str) -> int:
    value: int = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return value


async def test_every_statement_prepares_on_the_migrated_schema(pool: asyncpg.Pool) -> None:
    """A typo or a column a migration dropped fails here, not on the first request that needs it."""
    async with pool.acquire() as conn:
        for name, statement in queries.items():
            try:
                await conn.prepare(statement)
            except asyncpg.PostgresError as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{name}: {exc}")


async def test_claim_for_an_unknown_person_is_empty(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    claim = await storage.claim_messages(pool, workspace.id, "nobody", "phone", lease_s=300, now=NOW)
    assert claim == storage.Claim(now=NOW, person_id=None, last_message_at=None, messages=())
    # Polling creates no one and records nothing.
    assert (await count(pool, "people"), await count(pool, "events")) == (0, 0)


async def test_claim_without_a_clock_uses_the_databases(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    claim = await storage.claim_messages(pool, workspace.id, "nobody", "phone", lease_s=300)
    database_now = await pool.fetchval("SELECT now()")
    assert claim.now.tzinfo is not None
    assert claim.now <= database_now


async def test_claim_returns_the_tiers_facts(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    first = await send(pool, workspace.id, "user-1", now=NOW - timedelta(days=3), ttl_s=7 * 86400)
    second = await send(pool, workspace.id, "user-1", now=NOW - timedelta(days=1), ttl_s=7 * 86400)
    claim = await storage.claim_messages(pool, workspace.id, "user-1", "phone", lease_s=300, now=NOW)
    assert claim.person_id is not None
    assert claim.last_message_at == NOW - timedelta(days=1)
    assert [m.id for m in claim.messages] == [first.id, second.id]
    assert all(m.offered for m in claim.messages)


async def test_claim_for_a_person_of_another_workspace_is_empty(pool: asyncpg.Pool) -> None:
    acme = (await storage.create_workspace(pool, "acme")).workspace
    globex = (await storage.create_workspace(pool, "globex")).workspace
    await send(pool, acme.id, "user-1")
    claim = await storage.claim_messages(pool, globex.id, "user-1", "phone", lease_s=300, now=NOW)
    assert (claim.person_id, claim.messages) == (None, ())


async def test_record_device_events_says_why_each_report_was_refused(pool: asyncpg.Pool) -> None:
    acme = (await storage.create_workspace(pool, "acme")).workspace
    globex = (await storage.create_workspace(pool, "globex")).workspace
    message = await send(pool, acme.id, "user-1")
    elsewhere = await send(pool, globex.id, "user-1")
    claim = await storage.claim_messages(pool, acme.id, "user-1", "phone", lease_s=300, now=NOW)
    assert [m.id for m in claim.messages] == [message.id]

    # Another device of the same person: the message exists but was not offered to it.
    assert await storage.record_device_events(
        pool, acme.id, "user-1", "tablet", [DeviceReport(message.id, "shown")], now=NOW
    ) == ["not_offered_to_device"]

    results = await storage.record_device_events(
        pool, acme.id, "user-1", "phone",
        [
            DeviceReport(message.id, "action", "tour"),  # an action needs the message shown first
            DeviceReport(message.id, "shown"),
            DeviceReport(message.id, "shown"),  # repeated: accepted, recorded once
            DeviceReport(message.id, "action", "tour"),
            DeviceReport(uuid.uuid4(), "shown"),
            DeviceReport(elsewhere.id, "shown"),  # another workspace's message is unknown here
        ],
        now=NOW,
    )
    assert results == [
        "not_offered_to_device", None, None, None, "unknown_message", "unknown_message",
    ]

    events = await storage.list_message_events(pool, message.id)
    assert [(e.type, e.device_id, e.action) for e in events] == [
        ("queued", None, None), ("offered", "phone", None), ("shown", "phone", None), ("action", "phone", "tour"),
    ]
    read = await storage.get_message(pool, acme.id, message.id, NOW)
    assert read is not None and (read.state, read.device_id) == ("shown", "phone")
    assert await storage.get_message(pool, globex.id, message.id, NOW) is None


async def test_record_device_events_for_the_wrong_person_is_refused(pool: asyncpg.Pool) -> None:
    """The device's `user` must be the person the message belongs to, even with the right device id."""
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    message = await send(pool, workspace.id, "user-1")
    await storage.claim_messages(pool, workspace.id, "user-1", "phone", lease_s=300, now=NOW)
    assert await storage.record_device_events(
        pool, workspace.id, "user-2", "phone", [DeviceReport(message.id, "shown")], now=NOW
    ) == ["not_offered_to_device"]


async def test_a_disabled_workspace_queues_nothing(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    await storage.update_workspace(pool, workspace.id, in_app_enabled=False)
    outcome = await storage.send_message(
        pool, workspace.id, storage.NewMessage({"title": "Hi"}, ttl_s=60), external_id="user-1", now=NOW
    )
    assert outcome == storage.SendOutcome("disabled", None)
    assert (await count(pool, "messages"), await count(pool, "people")) == (0, 0)
