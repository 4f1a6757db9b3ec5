"""`pending_elsewhere` (mailslot_claim_messages_v2, migration 0028; decision 0045): whether the
person has anything queued or offered apart from what the claim hands this device.

`pending` is true whenever the claim itself offered something; `pending_elsewhere` leaves out what
the call claimed, expired or hands the device as held, and counts anything else, a row another
transaction had locked (skipped) and one over the claim limit included.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

import storage
from storage import ClaimRequest
from tests.storage.test_storage_api import NOW, send

LATER = NOW + timedelta(minutes=2)


async def workspace_of(pool: asyncpg.Pool) -> int:
    return (await storage.create_workspace(pool, "acme", identity_mode="off")).workspace.id


async def claim(pool: asyncpg.Pool, workspace: int, device: str, *, limit: int = 10,
                now: object = NOW) -> storage.Claim:
    async with pool.acquire() as conn:  # a connection claims alone (no claim queue)
        return await storage.claim_messages(conn, workspace, "ada", device, lease_s=300, limit=limit, now=now)


async def test_a_claim_that_takes_everything_leaves_nothing_pending_elsewhere(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    sent = {(await send(pool, workspace, "ada")).id for _ in range(2)}
    phone = await claim(pool, workspace, "phone")
    assert {m.id for m in phone.messages} == sent
    assert (phone.pending, phone.pending_elsewhere) == (True, False)
    # The same device again: its offers come back as held, and are still not "elsewhere".
    again = await claim(pool, workspace, "phone", now=LATER)
    assert {m.id for m in again.messages} == sent
    assert (again.pending, again.pending_elsewhere) == (True, False)
    # Another device finds them offered to the phone.
    laptop = await claim(pool, workspace, "laptop", now=LATER)
    assert (laptop.messages, laptop.pending, laptop.pending_elsewhere) == ((), True, True)


async def test_messages_over_the_claim_limit_are_pending_elsewhere(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    for _ in range(3):
        await send(pool, workspace, "ada")
    phone = await claim(pool, workspace, "phone", limit=2)
    assert len(phone.messages) == 2
    assert phone.pending_elsewhere is True


async def test_an_expired_message_is_not_pending_elsewhere(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    await send(pool, workspace, "ada", ttl_s=60)  # expired by LATER
    fresh = await send(pool, workspace, "ada")
    phone = await claim(pool, workspace, "phone", now=LATER)
    assert [m.id for m in phone.messages] == [fresh.id]
    assert phone.pending_elsewhere is False


async def test_a_row_another_transaction_holds_counts_as_pending_elsewhere(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    locked = await send(pool, workspace, "ada")
    free = await send(pool, workspace, "ada")
    async with pool.acquire() as other, other.transaction():
        await other.execute("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", locked.id)
        phone = await claim(pool, workspace, "phone")
    assert [m.id for m in phone.messages] == [free.id]
    assert phone.pending_elsewhere is True


async def test_no_person_and_nothing_sent_is_nothing_pending(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    nobody = await claim(pool, workspace, "phone")
    assert (nobody.person_id, nobody.pending, nobody.pending_elsewhere) == (None, False, False)


async def test_in_one_batch_the_second_device_sees_the_first_devices_offers_elsewhere(pool: asyncpg.Pool) -> None:
    workspace = await workspace_of(pool)
    await send(pool, workspace, "ada")
    requests = [ClaimRequest(workspace, "ada", device, lease_s=300, now=NOW) for device in ("phone", "laptop")]
    phone, laptop = await storage.claim_message_batch(pool, requests)
    assert len(phone.messages) == 1 and phone.pending_elsewhere is False
    assert laptop.messages == () and laptop.pending_elsewhere is True
