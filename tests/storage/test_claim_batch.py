"""Many polls' claims in one statement (decision 0037): each poll gets what a claim of its own,
made at that point, would have returned; polls started together through one pool share a
statement; a failed statement fails each of its callers as it would have failed alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

import storage
from storage import ClaimRequest
from tests.helpers import wait_until
from tests.storage.test_broadcast_round_trips import WireCounter, measure, wire
from tests.storage.test_storage_api import NOW, send
from tests.storage.test_visitors import VISITOR, visit_broadcast

__all__ = ["wire"]

LATER = NOW + timedelta(minutes=2)


async def workspace_of(pool: asyncpg.Pool, name: str = "acme") -> int:
    return (await storage.create_workspace(pool, name, identity_mode="off")).workspace.id


def poll(workspace: int, user: str | None, device: str, *, anonymous_id: str | None = None) -> ClaimRequest:
    return ClaimRequest(workspace, user, device, lease_s=300, now=LATER, anonymous_id=anonymous_id)


def shape(claim: storage.Claim) -> dict[str, Any]:
    """What a device learns from a claim, without ids that differ between workspaces."""
    return {
        "person": claim.person_id is not None,
        "messages": [(m.content["title"], m.offered, m.lease_expires_at) for m in claim.messages],
        "pending": claim.pending, "showing": claim.showing, "visiting": claim.visiting,
        "now": claim.now,
    }


async def offered_events(pool: asyncpg.Pool, workspace: int) -> int:
    value: int = await pool.fetchval(
        "SELECT count(*) FROM events WHERE workspace_id = $1 AND type = 'offered'", workspace
    )
    return value


async def test_two_devices_of_one_person_in_one_batch_get_each_message_once(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    await storage.identify_person(pool, workspace, "ada", {}, email="ada@example.com", set_email=True)
    first, second = await send(pool, workspace, "ada"), await send(pool, workspace, "ada")

    # The same person by id on two devices and by email on a third, in one statement.
    phone, laptop, tablet = await storage.claim_message_batch(pool, [
        poll(workspace, "ada", "phone"), poll(workspace, "ada", "laptop"),
        poll(workspace, "Ada@Example.com", "tablet"),
    ])

    assert sorted(m.id for m in phone.messages) == sorted([first.id, second.id])
    assert all(m.offered for m in phone.messages)
    assert (laptop.messages, tablet.messages) == ((), ())
    # Pending for the others too: what each would see right after the phone's claim.
    assert (phone.pending, laptop.pending, tablet.pending) == (True, True, True)
    assert len({phone.person_id, laptop.person_id, tablet.person_id}) == 1
    assert await offered_events(pool, workspace) == 2
    states = await pool.fetch("SELECT state, device_id FROM messages WHERE workspace_id = $1", workspace)
    assert sorted((r["state"], r["device_id"]) for r in states) == [("offered", "phone")] * 2


async def test_the_same_device_twice_in_one_batch_gets_its_offers_both_times(pool: asyncpg.Pool) -> None:
    """A device holds its offers for the lease: the second poll reads them back, as it would alone."""
    workspace = await workspace_of(pool)
    message = await send(pool, workspace, "ada")
    once, again = await storage.claim_message_batch(pool, [poll(workspace, "ada", "phone")] * 2)
    assert [m.id for m in once.messages] == [m.id for m in again.messages] == [message.id]
    assert await offered_events(pool, workspace) == 1


async def mixed_setup(pool: asyncpg.Pool, name: str) -> int:
    """People with queued, expired and no messages, and a `once` visit broadcast that new visitors enter."""
    workspace = await workspace_of(pool, name)
    await send(pool, workspace, "ada")
    await send(pool, workspace, "bob", ttl_s=60)  # expired by LATER
    await storage.identify_person(pool, workspace, "carol", {}, email=None, set_email=False)
    await visit_broadcast(pool, workspace)
    return workspace


MIXED = [  # (user, device, anonymous id)
    ("ada", "phone", None),
    ("bob", "phone", None),
    (None, "tab-a", VISITOR),
    ("ada", "laptop", None),
    (None, "tab-b", VISITOR),
    ("carol", "phone", None),
    ("nobody", "phone", None),
]


async def test_a_mixed_batch_answers_each_poll_as_claims_one_by_one_would(pool: asyncpg.Pool) -> None:
    batched, alone = await mixed_setup(pool, "batched"), await mixed_setup(pool, "alone")

    claims = await storage.claim_message_batch(
        pool, [poll(batched, user, device, anonymous_id=visitor) for user, device, visitor in MIXED])
    # The same polls one statement each, on a connection (never coalesced), in the same order.
    async with pool.acquire() as conn:
        one_by_one = [
            await storage.claim_messages(conn, alone, user, device, lease_s=300, now=LATER, anonymous_id=visitor)
            for user, device, visitor in MIXED
        ]
    assert [shape(c) for c in claims] == [shape(c) for c in one_by_one]

    ada, bob, tab_a, ada_laptop, tab_b, carol, nobody = claims
    # Ada: her message and the visit broadcast's copy; her laptop nothing.
    assert sorted(m.content["title"] for m in ada.messages) == ["Hi", "Welcome, visitor"]
    assert ada_laptop.messages == ()
    # Bob's message expired before the claim: recorded as expired, never offered.
    assert [m.content["title"] for m in bob.messages] == ["Welcome, visitor"]
    assert await pool.fetchval(
        "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message_id"
        " WHERE m.workspace_id = $1 AND e.type = 'expired'", batched) == 1
    # The visitor is created once, by the first tab, which gets the one copy.
    assert len(tab_a.messages) == 1 and tab_b.messages == ()
    assert tab_a.person_id == tab_b.person_id is not None
    assert await pool.fetchval(
        "SELECT count(*) FROM people WHERE workspace_id = $1 AND anonymous_id = $2", batched, VISITOR) == 1
    # Carol enters the broadcast too; nobody is no one, and nothing is pending for them.
    assert len(carol.messages) == 1
    assert (nobody.person_id, nobody.messages, nobody.pending) == (None, (), False)


async def test_claims_started_together_share_a_statement_each_with_its_own_answer(
    wire: tuple[WireCounter, asyncpg.Pool], pool: asyncpg.Pool
) -> None:
    counter, counted = wire
    workspace = await workspace_of(pool)
    people = [f"p{i}" for i in range(10)]
    sent = {p: (await send(pool, workspace, p)).id for p in people}
    await storage.claim_messages(counted, workspace, "warm", "d", lease_s=300, now=LATER)

    usage, claims = await measure(counter, asyncio.gather(*(
        storage.claim_messages(counted, workspace, p, "phone", lease_s=300, now=LATER) for p in people)))

    assert usage.statements < len(people), usage  # coalesced: one statement, or a few
    assert [[m.id for m in c.messages] for c in claims] == [[sent[p]] for p in people]


async def test_a_failed_statement_fails_each_of_its_claims_as_unavailable(pool: asyncpg.Pool) -> None:
    """A claim statement whose connection is lost fails every poll in it with the 503 of storage."""
    workspace = await workspace_of(pool)
    people = [f"p{i}" for i in range(6)]
    for p in people:
        await send(pool, workspace, p)
    async with pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire():
        pass  # every connection of the pool open (and its statements prepared) before the lock
    waiting_claims = (
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND wait_event_type = 'Lock'"
    )
    async with pool.acquire() as blocker:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE people IN ACCESS EXCLUSIVE MODE")
            claims = asyncio.gather(
                *(storage.claim_messages(pool, workspace, p, "phone", lease_s=300, now=LATER) for p in people),
                return_exceptions=True,
            )

            async def claims_waiting() -> bool:
                await blocker.execute("SELECT pg_stat_clear_snapshot()")
                waiting: int = await blocker.fetchval("SELECT count(*) " + waiting_claims)
                return waiting >= 1

            await wait_until(claims_waiting, what="the claim statement waiting on the lock")
            await blocker.execute("SELECT pg_terminate_backend(pid) " + waiting_claims)
            outcomes = await claims
    assert [type(o) for o in outcomes] == [storage.StorageUnavailable] * len(people), outcomes
    # Nothing was claimed, and the next poll claims as usual.
    after = await storage.claim_messages(pool, workspace, "p0", "phone", lease_s=300, now=LATER)
    assert len(after.messages) == 1


async def test_a_value_the_database_refuses_fails_only_its_own_claim(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    for p in ("ada", "bob"):
        await send(pool, workspace, p)
    ada, bad, bob = await asyncio.gather(
        storage.claim_messages(pool, workspace, "ada", "phone", lease_s=300, now=LATER),
        storage.claim_messages(pool, workspace, "ada", "nul\x00device", lease_s=300, now=LATER),
        storage.claim_messages(pool, workspace, "bob", "phone", lease_s=300, now=LATER),
        return_exceptions=True,
    )
    assert isinstance(bad, asyncpg.exceptions.DataError), bad
    assert isinstance(ada, storage.Claim) and len(ada.messages) == 1
    assert isinstance(bob, storage.Claim) and len(bob.messages) == 1


async def test_a_claim_cancelled_before_its_statement_claims_nothing(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    await send(pool, workspace, "ada")
    await send(pool, workspace, "bob")
    first = asyncio.ensure_future(storage.claim_messages(pool, workspace, "ada", "phone", lease_s=300, now=LATER))
    cancelled = asyncio.ensure_future(storage.claim_messages(pool, workspace, "bob", "phone", lease_s=300, now=LATER))
    await asyncio.sleep(0)  # one turn of the loop: both are queued; no statement has been sent yet
    cancelled.cancel()
    assert len((await first).messages) == 1
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await pool.fetchval(
        "SELECT state FROM messages m JOIN people p ON p.id = m.person_id WHERE p.external_id = 'bob'"
    ) == "queued"


async def test_two_batches_in_opposite_order_do_not_deadlock(pool: asyncpg.Pool) -> None:
    """Two processes' batches naming the same people take their visit entries in one order."""
    workspace = await workspace_of(pool)
    for user in ("ada", "bob"):
        await storage.identify_person(pool, workspace, user, {}, email=None, set_email=False)
    await visit_broadcast(pool, workspace)
    bob_id = await pool.fetchval("SELECT id FROM people WHERE external_id = 'bob'")
    broadcast_id = await pool.fetchval("SELECT id FROM broadcasts WHERE workspace_id = $1", workspace)
    deadlocks_before = await pool.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    async with pool.acquire() as blocker, pool.acquire() as one, pool.acquire() as two:
        # Bob's entry is held, so both batches stop at bob: one with ada's entry taken if it went
        # ada first, the other, had it gone bob first, waiting there before ada.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute(
            "INSERT INTO visit_entries (broadcast_id, person_id, entered_at) VALUES ($1, $2, $3)",
            broadcast_id, bob_id, LATER,
        )
        batches = [
            asyncio.ensure_future(storage.claim_message_batch(conn, [poll(workspace, u, device) for u in order]))
            for conn, order, device in ((one, ("ada", "bob"), "phone"), (two, ("bob", "ada"), "laptop"))
        ]

        async def both_waiting() -> bool:
            await blocker.execute("SELECT pg_stat_clear_snapshot()")
            waiting: int = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            return waiting == 2

        await wait_until(both_waiting, what="both batches waiting")
        await transaction.rollback()  # let them race for bob's entry
        results = await asyncio.gather(*batches)
    by_person = {
        user: [len(c.messages) for c in (results[0][i], results[1][1 - i])] for i, user in enumerate(("ada", "bob"))
    }
    # Each person's copy went to one device, and no batch was aborted as a deadlock.
    assert sorted(by_person["ada"]) == [0, 1] and sorted(by_person["bob"]) == [0, 1], by_person
    assert await pool.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()") == deadlocks_before
