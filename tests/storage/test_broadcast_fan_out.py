"""A plain broadcast is queued in chunks of people (decision 0031): each chunk is claimable once it
commits, every person gets one entry, and an interrupted send is finished by its replay without
a second entry for anyone, or any entry after a recall or a disabled workspace.

The chunk sizes are made tiny here, so that eleven people make five chunks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import storage
import storage.broadcasts as broadcasts
from gateway.core.filters import compile_filter
from storage.sql import queries

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CONTENT: dict[str, Any] = {"title": "Spring sale", "body": "20% off"}
PEOPLE = [f"p{i:02}" for i in range(11)]


class Interrupted(Exception):
    """Stands for a gateway that died after the plan committed."""


@pytest.fixture(autouse=True)
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A first chunk of 2, then 9 people in 2 * ceil(ceil(9 / 3) / 2) = 4 spans of ids.
    monkeypatch.setattr(broadcasts, "FIRST_CHUNK", 2)
    monkeypatch.setattr(broadcasts, "LARGEST_CHUNK", 3)
    yield


async def workspace_with_people(pool: asyncpg.Pool) -> int:
    workspace = (await storage.create_workspace(pool, "w")).workspace.id
    await storage.import_people(pool, workspace, PEOPLE)
    await pool.execute("UPDATE people SET attributes = jsonb_build_object('n', right(external_id, 2)::int) "
                       "WHERE workspace_id = $1", workspace)
    return workspace


async def send(pool: asyncpg.Pool, workspace: int, audience: storage.Audience | None = None,
               key: str | None = None) -> storage.BroadcastOutcome:
    return await storage.send_broadcast(
        pool, workspace, audience or storage.Audience(everyone=True),
        storage.NewMessage(CONTENT, ttl_s=86400),
        idempotency=storage.Idempotency(key, b"digest") if key else None, now=NOW,
    )


async def entries(pool: asyncpg.Pool, broadcast_id: Any) -> list[str]:
    rows = await pool.fetch("SELECT p.external_id FROM messages m JOIN people p ON p.id = m.person_id "
                            "WHERE m.broadcast_id = $1 ORDER BY p.external_id", broadcast_id)
    return [r["external_id"] for r in rows]


async def chunks(pool: asyncpg.Pool, broadcast_id: Any) -> list[tuple[int, int | None]]:
    rows = await pool.fetch("SELECT n, queued FROM broadcast_chunks WHERE broadcast_id = $1 ORDER BY n",
                            broadcast_id)
    return [(r["n"], r["queued"]) for r in rows]


def interrupt_after(monkeypatch: pytest.MonkeyPatch, queued_chunks: int) -> None:
    """The send plans, queues this many chunks, then dies."""

    async def fan_out(conn: asyncpg.Connection, pool: asyncpg.Pool, workspace_id: int, broadcast_id: Any,
                      audience: storage.Audience, now: datetime | None, planned: Any) -> Any:
        for _ in range(queued_chunks):
            await conn.fetchrow(queries["queue_broadcast"], workspace_id, broadcast_id, [], [], True, now,
                                None, None)
        raise Interrupted

    monkeypatch.setattr(broadcasts, "_fan_out", fan_out)


async def interrupted_send(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, queued_chunks: int,
                           key: str) -> tuple[int, Any]:
    """A workspace of PEOPLE and the broadcast whose send died after `queued_chunks` chunks."""
    workspace = await workspace_with_people(pool)
    with monkeypatch.context() as patch:
        interrupt_after(patch, queued_chunks)
        with pytest.raises(Interrupted):
            await send(pool, workspace, key=key)
    return workspace, await pool.fetchval("SELECT id FROM broadcasts WHERE workspace_id = $1", workspace)


async def test_every_person_gets_one_entry_across_the_chunks(pool: asyncpg.Pool) -> None:
    workspace = await workspace_with_people(pool)
    outcome = await send(pool, workspace)
    assert outcome.status == "queued" and outcome.broadcast is not None
    assert (outcome.broadcast.queued, outcome.broadcast.total) == (11, 11)
    assert outcome.broadcast.counts["queued"] == 11
    assert await entries(pool, outcome.broadcast.id) == PEOPLE
    assert [n for n, _ in await chunks(pool, outcome.broadcast.id)] == [0, 1, 2, 3, 4]
    assert sum(q or 0 for _, q in await chunks(pool, outcome.broadcast.id)) == 11
    # Every chunk's entries expire together, from the send's time.
    assert await pool.fetchval("SELECT count(DISTINCT expires_at) FROM messages WHERE broadcast_id = $1",
                               outcome.broadcast.id) == 1


async def test_a_filter_and_a_list_of_ids_are_chunked_too(pool: asyncpg.Pool) -> None:
    workspace = await workspace_with_people(pool)
    spec = {"attribute": "n", "op": "gte", "value": 5}
    compiled = compile_filter(spec)
    filtered = await send(pool, workspace, storage.Audience(
        filter=storage.AudienceFilter(compiled.path, compiled.vars, spec)))
    assert filtered.broadcast is not None and filtered.broadcast.queued == 6
    assert await entries(pool, filtered.broadcast.id) == PEOPLE[5:]
    named = [*PEOPLE[::2], "newcomer"]
    listed = await send(pool, workspace, storage.Audience(ids=tuple(named)))
    assert listed.broadcast is not None and listed.broadcast.queued == len(named)
    assert await entries(pool, listed.broadcast.id) == sorted(named)


async def test_a_broadcast_to_no_one_plans_no_chunk(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "empty")).workspace.id
    outcome = await send(pool, workspace)
    assert outcome.broadcast is not None and (outcome.broadcast.queued, outcome.broadcast.total) == (0, 0)
    assert await chunks(pool, outcome.broadcast.id) == []


async def test_a_committed_chunk_is_claimable_before_the_rest_and_a_replay_finishes_the_send(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, broadcast_id = await interrupted_send(pool, monkeypatch, 1, "k1")
    assert await entries(pool, broadcast_id) == PEOPLE[:2]
    later = NOW + timedelta(seconds=1)
    first = await storage.claim_messages(pool, workspace, PEOPLE[0], "phone", lease_s=300, now=later)
    last = await storage.claim_messages(pool, workspace, PEOPLE[-1], "phone", lease_s=300, now=later)
    assert (len(first.messages), len(last.messages)) == (1, 0)

    replay = await send(pool, workspace, key="k1")
    assert replay.status == "replayed" and replay.broadcast is not None
    assert (replay.broadcast.id, replay.broadcast.queued, replay.broadcast.total) == (broadcast_id, 11, 11)
    assert await entries(pool, broadcast_id) == PEOPLE
    again = await storage.claim_messages(pool, workspace, PEOPLE[-1], "phone", lease_s=300, now=later)
    assert len(again.messages) == 1
    # A further replay queues nothing more.
    assert (await send(pool, workspace, key="k1")).broadcast.total == 11  # type: ignore[union-attr]


async def test_chunks_left_by_an_interrupted_send_queue_nothing_once_recalled(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, broadcast_id = await interrupted_send(pool, monkeypatch, 2, "k2")
    queued_before = len(await entries(pool, broadcast_id))
    assert 2 < queued_before < 11
    recalled = await storage.recall_broadcast(pool, workspace, broadcast_id, now=NOW)
    assert recalled.recalled == queued_before

    replay = await send(pool, workspace, key="k2")
    assert replay.status == "replayed" and replay.broadcast is not None
    assert replay.broadcast.status == "recalled"
    assert replay.broadcast.total == queued_before == replay.broadcast.counts["recalled"]
    assert all(queued is not None for _, queued in await chunks(pool, broadcast_id))


async def test_a_workspace_disabled_during_the_fan_out_stops_it_for_good(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, broadcast_id = await interrupted_send(pool, monkeypatch, 1, "k3")
    # At the send's own time: its entries live a day from NOW, and the database's clock is later.
    await storage.update_workspace(pool, workspace, in_app_enabled=False, now=NOW)
    # The replay finds the workspace disabled: the chunks left are done with nothing queued...
    replay = await send(pool, workspace, key="k3")
    assert replay.status == "replayed" and replay.broadcast is not None
    assert replay.broadcast.total == 2 and replay.broadcast.counts["recalled"] == 2
    # ...so enabling it again and replaying queues nothing more.
    await storage.update_workspace(pool, workspace, in_app_enabled=True)
    again = await send(pool, workspace, key="k3")
    assert again.broadcast is not None and again.broadcast.total == 2
    assert await entries(pool, broadcast_id) == PEOPLE[:2]


async def test_a_send_to_a_disabled_workspace_stores_nothing(pool: asyncpg.Pool) -> None:
    workspace = await workspace_with_people(pool)
    await storage.update_workspace(pool, workspace, in_app_enabled=False)
    assert (await send(pool, workspace)).status == "disabled"
    assert await pool.fetchval("SELECT count(*) FROM broadcasts WHERE workspace_id = $1", workspace) == 0
    assert await pool.fetchval("SELECT count(*) FROM broadcast_chunks") == 0


async def test_a_pool_with_no_free_connection_queues_every_chunk_on_the_sends_own(
    pool: asyncpg.Pool, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a burst of claims the pool may be empty: the send neither fails nor waits for it."""
    monkeypatch.setattr(broadcasts, "HELPER_ACQUIRE_S", 0.05)
    workspace = await workspace_with_people(pool)
    small = await storage.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with small.acquire():
            outcome = await send(small, workspace)
    finally:
        await small.close()
    assert outcome.broadcast is not None and (outcome.broadcast.queued, outcome.broadcast.total) == (11, 11)
    assert await entries(pool, outcome.broadcast.id) == PEOPLE


async def test_entry_ids_are_unique_version_7_uuids_in_person_order(pool: asyncpg.Pool) -> None:
    """A chunk's ids are one random id plus each person's offset (decision 0040): still RFC 9562
    version 7 with its variant, one per person, ascending with the person within a chunk, and
    unique across broadcasts sent at the same instant to the same people."""
    workspace = await workspace_with_people(pool)
    sent = [await send(pool, workspace) for _ in range(3)]
    rows = await pool.fetch("SELECT m.id, m.broadcast_id, m.person_id FROM messages m WHERE m.workspace_id = $1",
                            workspace)
    assert len(rows) == 3 * len(PEOPLE)
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["id"].version == 7 and r["id"].variant == uuid.RFC_4122 for r in rows)
    for outcome in sent:
        assert outcome.broadcast is not None
        mine = [r for r in rows if r["broadcast_id"] == outcome.broadcast.id]
        assert len({r["person_id"] for r in mine}) == len(PEOPLE)
        bounds = await pool.fetch("SELECT first_person_id, last_person_id FROM broadcast_chunks "
                                  "WHERE broadcast_id = $1", outcome.broadcast.id)
        for bound in bounds:
            chunk = sorted((r for r in mine if bound["first_person_id"] <= r["person_id"] <= bound["last_person_id"]),
                           key=lambda r: r["person_id"])
            assert [r["id"] for r in chunk] == sorted(r["id"] for r in chunk)
