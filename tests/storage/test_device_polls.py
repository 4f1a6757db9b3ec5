"""Devices' last polls: gathered in memory by each process and written in one batched statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

import storage
from gateway.core.clock import FixedClock
from gateway.core.device_polls import DevicePolls

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def last_polls(pool: asyncpg.Pool, person_id: int) -> dict[str, datetime]:
    return {d.device_id: d.polled_at for d in await storage.list_person_devices(pool, person_id)}


async def test_one_statement_writes_many_devices_and_skips_unknown_people(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    ada = await storage.identify_person(pool, workspace.id, "ada", {}, email=None, set_email=False)
    await storage.record_device_polls(pool, [
        (workspace.id, "ada", "phone", NOW),
        (workspace.id, "ada", "laptop", NOW - timedelta(seconds=5)),
        (workspace.id, "nobody", "phone", NOW),  # polls as no one known: nothing to show it on
        (workspace.id + 1, "ada", "tablet", NOW),  # another workspace's "ada" is not this one
    ])
    assert await last_polls(pool, ada.id) == {"phone": NOW, "laptop": NOW - timedelta(seconds=5)}
    assert await pool.fetchval("SELECT count(*) FROM device_polls") == 2


async def test_a_later_poll_moves_the_time_on_and_an_older_one_never_back(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    ada = await storage.identify_person(pool, workspace.id, "ada", {}, email="ada@example.com", set_email=True)
    await storage.record_device_polls(pool, [(workspace.id, "ada", "phone", NOW)])
    await storage.record_device_polls(pool, [(workspace.id, "ADA@example.com", "phone", NOW + timedelta(seconds=30))])
    assert await last_polls(pool, ada.id) == {"phone": NOW + timedelta(seconds=30)}
    # A batch from a process that was slow to flush carries an older time: it is ignored.
    await storage.record_device_polls(pool, [(workspace.id, "ada", "phone", NOW)])
    assert await last_polls(pool, ada.id) == {"phone": NOW + timedelta(seconds=30)}
    # The same device twice in one batch (by id and by email): the latest time wins.
    await storage.record_device_polls(pool, [
        (workspace.id, "ada", "phone", NOW + timedelta(minutes=2)),
        (workspace.id, "ada@example.com", "phone", NOW + timedelta(minutes=1)),
    ])
    assert await last_polls(pool, ada.id) == {"phone": NOW + timedelta(minutes=2)}
    await storage.record_device_polls(pool, [])  # nothing to write: no statement


async def test_without_a_clock_the_database_stamps_the_time(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    ada = await storage.identify_person(pool, workspace.id, "ada", {}, email=None, set_email=False)
    before = await pool.fetchval("SELECT now()")
    await storage.record_device_polls(pool, [(workspace.id, "ada", "phone", None)])
    assert (await last_polls(pool, ada.id))["phone"] >= before


async def test_the_process_notes_polls_in_memory_and_writes_them_in_one_flush(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    ada = await storage.identify_person(pool, workspace.id, "ada", {}, email=None, set_email=False)
    clock = FixedClock(NOW)
    polls = DevicePolls(pool, clock, flush_interval_s=10)
    polls.record(workspace.id, "ada", "phone")
    clock.advance(seconds=10)
    polls.record(workspace.id, "ada", "phone")  # the same device again: one entry, the latest time
    polls.record(workspace.id, "ada", "laptop")
    assert len(polls) == 2
    assert await last_polls(pool, ada.id) == {}  # nothing written until the flush
    assert await polls.flush() == 2
    assert len(polls) == 0
    later = NOW + timedelta(seconds=10)
    assert await last_polls(pool, ada.id) == {"phone": later, "laptop": later}
    assert await polls.flush() == 0


async def test_a_failed_flush_keeps_the_polls_for_the_next_one(pool: asyncpg.Pool, database_url: str) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    ada = await storage.identify_person(pool, workspace.id, "ada", {}, email=None, set_email=False)
    broken = await storage.create_pool(database_url, min_size=1, max_size=1)
    await broken.close()  # every statement on it fails
    clock = FixedClock(NOW)
    polls = DevicePolls(broken, clock, flush_interval_s=10)
    polls.record(workspace.id, "ada", "phone")
    with pytest.raises(Exception):  # noqa: B017 - whatever a closed pool raises, the polls survive it
        await polls.flush()
    clock.advance(seconds=5)
    polls.record(workspace.id, "ada", "laptop")
    assert len(polls) == 2
    polls._pool = pool  # the database is back
    assert await polls.flush() == 2
    assert await last_polls(pool, ada.id) == {"phone": NOW, "laptop": NOW + timedelta(seconds=5)}
