"""Anonymous visitors and visit broadcasts in storage (decision 0023): copies made by the claim,
one per person under any interleaving, at the broadcast's frequency, until its end; identify
merges a visitor into the person."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg
import pytest

import storage
from storage import DeviceReport
from tests.helpers import wait_until
from tests.storage.test_storage_api import NOW, count, send

VISITOR = "anon_0123456789abcdefXYZ"
OTHER_VISITOR = "anon_fedcba9876543210xyz"


async def workspace_id(pool: asyncpg.Pool) -> int:
    return (await storage.create_workspace(pool, "acme", identity_mode="off")).workspace.id


async def visit_broadcast(
    pool: asyncpg.Pool, workspace: int, *, every_s: int | None = None, ends_at: datetime = NOW + timedelta(days=7),
    now: datetime = NOW,
) -> storage.Broadcast:
    outcome = await storage.send_broadcast(
        pool, workspace, storage.Audience(visit=storage.VisitRule(ends_at=ends_at, every_s=every_s)),
        storage.NewMessage({"title": "Welcome, visitor"}, ttl_s=86400), now=now,
    )
    assert outcome.status == "queued" and outcome.broadcast is not None, outcome
    return outcome.broadcast


async def claim_as_visitor(
    pool: asyncpg.Pool | asyncpg.Connection, workspace: int, visitor: str, device: str, now: datetime = NOW
) -> storage.Claim:
    return await storage.claim_messages(pool, workspace, None, device, lease_s=300, now=now, anonymous_id=visitor)


async def copies(pool: asyncpg.Pool, broadcast: storage.Broadcast) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT m.id, m.person_id, m.state, m.device_id, m.expires_at, p.anonymous_id, p.external_id"
        " FROM messages m JOIN people p ON p.id = m.person_id WHERE m.broadcast_id = $1 ORDER BY m.created_at",
        broadcast.id,
    )


async def test_a_visit_broadcast_queues_nothing_until_someone_visits(pool: asyncpg.Pool) -> None:
    workspace = await workspace_id(pool)
    broadcast = await visit_broadcast(pool, workspace, every_s=7200)
    assert broadcast.audience == {
        "visitors": True, "frequency": {"every_hours": 2}, "ends_at": "2026-12-05T12:00:00Z",
    }
    assert (broadcast.queued, broadcast.total) == (0, 0)
    assert await count(pool, "people") == 0


async def test_a_visitor_gets_a_copy_on_its_first_poll_and_keeps_its_lease(pool: asyncpg.Pool) -> None:
    workspace = await workspace_id(pool)
    broadcast = await visit_broadcast(pool, workspace)
    first = await claim_as_visitor(pool, workspace, VISITOR, "browser")
    assert [m.content for m in first.messages] == [{"title": "Welcome, visitor"}]
    assert first.messages[0].offered and first.person_id is not None
    # The same device polling again holds the same offer: no second copy.
    again = await claim_as_visitor(pool, workspace, VISITOR, "browser", NOW + timedelta(seconds=10))
    assert [m.id for m in again.messages] == [first.messages[0].id]
    rows = await copies(pool, broadcast)
    assert [(r["anonymous_id"], r["external_id"], r["state"], r["expires_at"]) for r in rows] == [
        (VISITOR, None, "offered", NOW + timedelta(days=7))
    ]
    events = await pool.fetch("SELECT type, device_id FROM events WHERE message_id = $1 ORDER BY id", rows[0]["id"])
    assert [(e["type"], e["device_id"]) for e in events] == [("queued", None), ("offered", "browser")]
    # Another visitor gets a copy of its own.
    other = await claim_as_visitor(pool, workspace, OTHER_VISITOR, "laptop")
    assert len(other.messages) == 1 and other.messages[0].id != first.messages[0].id


async def test_a_visitor_can_report_what_it_showed(pool: asyncpg.Pool) -> None:
    workspace = await workspace_id(pool)
    await visit_broadcast(pool, workspace)
    message = (await claim_as_visitor(pool, workspace, VISITOR, "browser")).messages[0]
    results = await storage.record_device_events(
        pool, workspace, None, "browser", [DeviceReport(message.id, "shown")], now=NOW, anonymous_id=VISITOR,
    )
    assert results == [None]
    # Another visitor (or a person) cannot report on it.
    assert await storage.record_device_events(
        pool, workspace, None, "browser", [DeviceReport(message.id, "dismissed")], now=NOW,
        anonymous_id=OTHER_VISITOR,
    ) == ["not_offered_to_device"]
    assert await storage.record_device_events(
        pool, workspace, VISITOR, "browser", [DeviceReport(message.id, "dismissed")], now=NOW,
    ) == ["not_offered_to_device"]


async def test_a_visitor_never_reaches_a_persons_queue(pool: asyncpg.Pool) -> None:
    """A person whose id is the visitor id: the visitor's poll names only visitors."""
    workspace = await workspace_id(pool)
    await send(pool, workspace, VISITOR)
    claim = await claim_as_visitor(pool, workspace, VISITOR, "browser")
    assert (claim.person_id, claim.messages) == (None, ())
    # And with no visit broadcast open, a visitor's poll creates no one.
    assert await count(pool, "people") == 1


async def lined_up(pool: asyncpg.Pool, blocker: str, args: tuple[object, ...],
                   claims: list[Callable[[asyncpg.Connection], Awaitable[storage.Claim]]]) -> list[storage.Claim]:
    """Run `claims` so that they meet at the same row: an uncommitted `blocker` insert holds them
    until both wait on it, then rolls back and lets them race for the row it held.

    Each claim runs on a connection of its own, as two processes' claims do: through the pool,
    claims started together share one statement (decision 0037) and never race in the database.
    """
    async with contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(pool.acquire())
        own = [await stack.enter_async_context(pool.acquire()) for _ in claims]
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(blocker, *args)
        tasks = [asyncio.ensure_future(claim(claim_conn)) for claim, claim_conn in zip(claims, own, strict=True)]

        async def both_waiting() -> bool:
            # Asked on the blocker's connection, whose transaction would keep one stale view of the stats.
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            waiting: int = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            return waiting == len(tasks)

        await wait_until(both_waiting, what="both claims waiting on the row")
        await transaction.rollback()
        return list(await asyncio.gather(*tasks))


async def test_two_tabs_of_a_new_visitor_polling_at_once_get_one_copy(pool: asyncpg.Pool) -> None:
    workspace = await workspace_id(pool)
    broadcast = await visit_broadcast(pool, workspace)
    claims = await lined_up(
        pool, "INSERT INTO people (workspace_id, anonymous_id) VALUES ($1, $2)", (workspace, VISITOR),
        [
            functools.partial(claim_as_visitor, workspace=workspace, visitor=VISITOR, device=tab)
            for tab in ("tab-a", "tab-b")
        ],
    )
    assert sorted(len(c.messages) for c in claims) == [0, 1]
    # Later polls of both tabs change nothing: the one copy stays leased to the tab that won.
    for tab in ("tab-a", "tab-b"):
        await claim_as_visitor(pool, workspace, VISITOR, tab)
    rows = await copies(pool, broadcast)
    assert [(r["anonymous_id"], r["state"]) for r in rows] == [(VISITOR, "offered")]


@pytest.mark.parametrize("who", ["visitor", "person"])
async def test_two_devices_of_one_person_polling_at_once_get_one_copy(pool: asyncpg.Pool, who: str) -> None:
    """First device wins stays per person, and a visitor is a person: the entry row decides."""
    workspace = await workspace_id(pool)
    if who == "person":
        person_id = (await storage.identify_device_person(pool, workspace, "ada", {}, create_by_email=False)).id
        user, visitor = "ada", None
    else:
        # A visitor an earlier poll created.
        person_id = await pool.fetchval(
            "INSERT INTO people (workspace_id, anonymous_id) VALUES ($1, $2) RETURNING id", workspace, VISITOR
        )
        user, visitor = None, VISITOR
    broadcast = await visit_broadcast(pool, workspace)
    claims = await lined_up(
        pool, "INSERT INTO visit_entries (broadcast_id, person_id, entered_at) VALUES ($1, $2, $3)",
        (broadcast.id, person_id, NOW),
        [
            functools.partial(storage.claim_messages, workspace_id=workspace, user=user, device_id=device,
                              lease_s=300, now=NOW, anonymous_id=visitor)
            for device in ("phone", "laptop")
        ],
    )
    assert sorted(len(c.messages) for c in claims) == [0, 1]
    assert len(await copies(pool, broadcast)) == 1


async def test_every_n_hours_a_visitor_gets_it_again(pool: asyncpg.Pool) -> None:
    workspace = await workspace_id(pool)
    broadcast = await visit_broadcast(pool, workspace, every_s=2 * 3600)
    first = (await claim_as_visitor(pool, workspace, VISITOR, "browser")).messages[0]
    await storage.record_device_events(
        pool, workspace, None, "browser", [DeviceReport(first.id, "dismissed")], now=NOW, anonymous_id=VISITOR,
    )
    almost = await claim_as_visitor(pool, workspace, VISITOR, "browser", NOW + timedelta(hours=2, seconds=-1))
    assert (almost.messages, almost.visiting) == ((), True)
    later = await claim_as_visitor(pool, workspace, VISITOR, "browser", NOW + timedelta(hours=2))
    assert len(later.messages) == 1 and later.messages[0].id != first.id
    assert len(await copies(pool, broadcast)) == 2


async def test_once_means_once_per_visitor(pool: asyncpg.Pool) -> None:
    workspace = await workspace_id(pool)
    broadcast = await visit_broadcast(pool, workspace)
    first = (await claim_as_visitor(pool, workspace, VISITOR, "browser")).messages[0]
    await storage.record_device_events(
        pool, workspace, None, "browser", [DeviceReport(first.id, "dismissed")], now=NOW, anonymous_id=VISITOR,
    )
    later = await claim_as_visitor(pool, workspace, VISITOR, "browser", NOW + timedelta(days=6))
    # Nothing more to enter: the poll may be answered from the quiet cache from now on.
    assert (later.messages, later.visiting) == ((), False)
    assert len(await copies(pool, broadcast)) == 1


async def test_the_end_date_ends_entries_and_expires_copies(pool: asyncpg.Pool) -> None:
    workspace = await workspace_id(pool)
    ends_at = NOW + timedelta(hours=1)
    broadcast = await visit_broadcast(pool, workspace, ends_at=ends_at)
    offered = await claim_as_visitor(pool, workspace, VISITOR, "browser")
    assert len(offered.messages) == 1
    # Past the end: the unshown copy expires, and a new visitor gets nothing (and is not created).
    after = await claim_as_visitor(pool, workspace, VISITOR, "other-browser", ends_at)
    assert (after.messages, after.visiting) == ((), False)
    late = await claim_as_visitor(pool, workspace, OTHER_VISITOR, "laptop", ends_at + timedelta(seconds=1))
    assert (late.person_id, late.messages) == (None, ())
    assert [r["state"] for r in await copies(pool, broadcast)] == ["expired"]


async def test_a_recalled_or_disabled_visit_broadcast_makes_no_copies(pool: asyncpg.Pool) -> None:
    workspace = await workspace_id(pool)
    broadcast = await visit_broadcast(pool, workspace)
    await storage.recall_broadcast(pool, workspace, broadcast.id, NOW)
    assert (await claim_as_visitor(pool, workspace, VISITOR, "browser")).messages == ()
    await visit_broadcast(pool, workspace)
    await storage.update_workspace(pool, workspace, in_app_enabled=False)
    assert (await claim_as_visitor(pool, workspace, VISITOR, "browser")).messages == ()
    refused = await storage.send_broadcast(
        pool, workspace, storage.Audience(visit=storage.VisitRule(ends_at=NOW + timedelta(days=1))),
        storage.NewMessage({"title": "Hi"}, ttl_s=60), now=NOW,
    )
    assert refused.status == "disabled"


async def test_identify_merges_the_visitor_into_the_person(pool: asyncpg.Pool) -> None:
    """The visitor's messages and history follow the person; `once` stays once on their other devices."""
    workspace = await workspace_id(pool)
    broadcast = await visit_broadcast(pool, workspace)
    copy = (await claim_as_visitor(pool, workspace, VISITOR, "browser")).messages[0]
    await storage.record_device_events(
        pool, workspace, None, "browser", [DeviceReport(copy.id, "shown")], now=NOW, anonymous_id=VISITOR,
    )
    person = await storage.identify_device_person(
        pool, workspace, "ada", {"plan": "free"}, create_by_email=False, anonymous_id=VISITOR,
    )
    history = await storage.list_person_messages(pool, person.id, now=NOW)
    assert [(m.id, m.state) for m in history] == [(copy.id, "shown")]
    # The visitor is emptied, not deleted: a tab still polling as it gets nothing again.
    assert await pool.fetchval(
        "SELECT count(*) FROM messages m JOIN people p ON p.id = m.person_id WHERE p.anonymous_id = $1", VISITOR
    ) == 0
    assert (await claim_as_visitor(pool, workspace, VISITOR, "other-tab")).messages == ()
    # The person's phone polls: the visit broadcast was already theirs, so no second copy.
    phone = await storage.claim_messages(pool, workspace, "ada", "phone", lease_s=300, now=NOW)
    assert phone.messages == () and not phone.visiting
    assert len(await copies(pool, broadcast)) == 1


async def test_identify_carries_an_offer_to_the_same_device(pool: asyncpg.Pool) -> None:
    workspace = await workspace_id(pool)
    await visit_broadcast(pool, workspace)
    copy = (await claim_as_visitor(pool, workspace, VISITOR, "browser")).messages[0]
    await storage.identify_device_person(pool, workspace, "ada", {}, create_by_email=False, anonymous_id=VISITOR)
    held = await storage.claim_messages(pool, workspace, "ada", "browser", lease_s=300, now=NOW)
    assert [m.id for m in held.messages] == [copy.id]
    # An unknown visitor id merges nothing and fails nothing.
    await storage.identify_device_person(pool, workspace, "bob", {}, create_by_email=False, anonymous_id=OTHER_VISITOR)
