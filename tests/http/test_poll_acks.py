"""A poll that acknowledges its device's offers needs no claim (decision 0045).

A held poll delivers a message; the device's next poll carries `shown` for it. When the claim that
offered it saw nothing else pending for the person, and every offer got an accepted report, memory
learns that the person is quiet and the acknowledging poll parks (or answers) without a claim. A
send that lands meanwhile, a report refused because another device took the message over, or an
offer left unacknowledged, sends the poll to the database as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import storage
from gateway import Config, create_app
from gateway.core.clock import FixedClock
from gateway.http.keys import MEMORY, WAITERS
from tests.helpers import Api, Reply, wait_until
from tests.http.test_poll_memory import HeldNotices, quiet, remembered, sent_id

StartGateway = Callable[..., Awaitable[Api]]


@pytest.fixture
def config(config: Config) -> Config:
    # Notes and entries outlive the leases these tests let run out on the pinned clock.
    return dataclasses.replace(config, listener_probe_s=1.0, quiet_ttl_s=3600)


@pytest.fixture
async def api(api: Api) -> Api:
    await wait_until(lambda: api.client.app[MEMORY].enabled, what="the listener connected")
    return api


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The device of every claim statement the gateways run, in order."""
    made: list[str] = []
    real = storage.claim_messages

    async def counting(db: Any, workspace_id: int, user: str | None, device_id: str, **fields: Any) -> Any:
        made.append(device_id)
        return await real(db, workspace_id, user, device_id, **fields)

    monkeypatch.setattr(storage, "claim_messages", counting)
    return made


@pytest.fixture
async def start_gateway(aiohttp_client, config: Config, clock: FixedClock, api: Api) -> StartGateway:  # type: ignore[no-untyped-def]
    """Another gateway app (another process, as far as the database can tell) on the same workspace."""

    async def start() -> Api:
        app = create_app(config, clock=clock, rng=random.Random(17))
        other = Api(await aiohttp_client(app), api.credentials)
        await wait_until(lambda: app[MEMORY].enabled, what="the other listener connected")
        return other

    return start


def shown(*message_ids: str) -> list[dict[str, str]]:
    return [{"message_id": m, "type": "shown"} for m in message_ids]


async def parked(api: Api, n: int = 1) -> None:
    await wait_until(lambda: len(api.client.app[WAITERS]) == n, what=f"{n} poll(s) parked")


async def delivered(api: Api, user: str = "ada", device: str = "phone", *, count: int = 1) -> list[str]:
    """Messages handed to a held poll of `device` by its claim: one sent while the poll is parked
    on memory (the claim of the woken poll, as under load), or several sent before it."""
    await quiet(api, user, device)
    if count > 1:
        memory = api.client.app[MEMORY]
        heard = memory.mark()
        sent = [await sent_id(api, user, f"Hello {n}") for n in range(count)]
        # Every send's notice heard before the claim's mark: a notice after it would (rightly) refuse
        # the acknowledgement. The entry goes with the first notice; the others may still be on
        # their way then, so count them all.
        await wait_until(lambda: memory.mark() >= heard + count, what="every send's notice")
        assert not remembered(api, user)
        reply = await api.poll(user, device, wait=10)
    else:
        hits = await api.metric("mailslot_poll_memory_total", result="hit")
        held = api.hold(user, device, wait=10)
        await parked(api)

        async def on_memory() -> bool:
            return await api.metric("mailslot_poll_memory_total", result="hit") == hits + 1

        await wait_until(on_memory, what="parked on memory, not in the middle of a claim")
        sent = [await sent_id(api, user, "Hello")]
        reply = await held
    assert sorted(reply.message_ids) == sorted(sent), reply
    return sent


async def acks(api: Api, result: str) -> float:
    return await api.metric("mailslot_poll_memory_acks_total", result=result)


async def test_a_held_poll_that_acknowledges_its_offer_parks_without_a_claim(api: Api, claims: list[str]) -> None:
    [first] = await delivered(api)
    before = len(claims)
    hits = await api.metric("mailslot_poll_memory_total", result="hit")

    acking = asyncio.create_task(api.poll("ada", "phone", wait=10, events=shown(first)))
    await parked(api)
    assert len(claims) == before, "the acknowledging poll ran a claim statement"
    assert await acks(api, "acked") == 1
    assert await api.metric("mailslot_poll_memory_total", result="hit") == hits + 1
    assert (await api.message(first)).body["state"] == "shown"

    second = await sent_id(api, "ada", "Second")
    reply = await acking
    assert reply.message_ids == [second]
    assert reply.body["events"] == {"accepted": 1, "rejected": []}
    assert claims[before:] == ["phone"]  # the woken poll's claim, nothing else


async def test_a_short_poll_that_acknowledges_its_offer_is_answered_from_memory(api: Api, claims: list[str]) -> None:
    [first] = await delivered(api)
    before = len(claims)
    reply = await api.poll("ada", "phone", events=shown(first))
    assert reply.status == 200, reply
    assert (reply.message_ids, reply.body["tier"], reply.body["events"]["accepted"]) == ([], "inactive", 1)
    assert len(claims) == before
    # The claim would have said the same: nothing left, a message within the recent window.
    claimed = await api.poll("ada", "laptop")
    assert (claimed.message_ids, claimed.body["tier"]) == ([], "inactive")


async def test_a_dismissed_offer_counts_as_acknowledged(api: Api, claims: list[str]) -> None:
    first, second = await delivered(api, count=2)
    before = len(claims)
    reply = await api.poll("ada", "phone", events=[*shown(first), {"message_id": second, "type": "dismissed"}])
    assert reply.body["events"] == {"accepted": 2, "rejected": []}
    assert (reply.message_ids, len(claims)) == ([], before)


async def test_a_send_heard_before_the_acknowledgement_sends_the_poll_to_the_database(
    api: Api, claims: list[str]
) -> None:
    [first] = await delivered(api)
    second = await sent_id(api, "ada", "Second")  # committed, and its notice heard, before the `shown`
    await wait_until(lambda: not remembered(api, "ada"), what="the notice")
    reply = await asyncio.wait_for(api.poll("ada", "phone", wait=5, events=shown(first)), 4)
    assert reply.message_ids == [second]
    assert await acks(api, "refused") == 1
    assert claims[-1] == "phone"


@pytest.mark.parametrize("wait", [5, 0])
async def test_a_send_whose_notice_comes_after_the_acknowledgement_still_reaches_the_poll(
    api: Api, start_gateway: StartGateway, wait: int
) -> None:
    """The entry is written before the notice of a send already committed: the notice drops it.
    A held poll is woken by it; a short poll waits for its barrier marker behind it."""
    other = await start_gateway()
    [first] = await delivered(api)
    late = HeldNotices(api)
    second = await sent_id(other, "ada", "Second")
    await wait_until(lambda: len(late.held) >= 1, what="the notice arrived (held)")
    acking = asyncio.create_task(api.poll("ada", "phone", wait=wait, events=shown(first)))
    if wait:
        await parked(api)  # on the entry the acknowledgement wrote
        assert remembered(api, "ada", "phone")
    else:
        await wait_until(lambda: len(late.held) >= 2 or acking.done(), what="the poll's marker (held)")
    assert not acking.done(), "answered before the notice of a committed send was heard"
    late.release()
    reply = await asyncio.wait_for(acking, 4)
    assert reply.message_ids == [second], reply
    assert (await api.poll("ada", "phone", events=shown(second))).message_ids == []


async def test_sends_landing_at_the_moment_of_the_acknowledgement_are_delivered(
    api: Api, start_gateway: StartGateway, claims: list[str]
) -> None:
    """Each round, a send and the poll acknowledging the last message race; the poll must get it."""
    other = await start_gateway()
    rng = random.Random(45)
    [last] = await delivered(api)
    for n in range(40):
        async def send(n: int = n) -> str:
            for _ in range(rng.randint(0, 12)):
                await asyncio.sleep(0)
            return await sent_id(rng.choice([api, other]), "ada", f"Race {n}")

        async def acknowledge(last: str = last) -> Reply:
            for _ in range(rng.randint(0, 12)):
                await asyncio.sleep(0)
            return await api.poll("ada", "phone", wait=3, events=shown(last))

        message_id, reply = await asyncio.gather(send(), acknowledge())
        assert reply.status == 200, reply
        assert reply.body["events"] == {"accepted": 1, "rejected": []}, (n, reply)
        assert reply.message_ids == [message_id], (n, reply)
        last = message_id
    assert await acks(api, "acked") + await acks(api, "refused") == 40
    assert await acks(api, "acked") > 0


async def test_a_report_refused_because_another_device_took_the_offer_over_gives_no_shortcut(
    api: Api, clock: FixedClock, claims: list[str]
) -> None:
    [message_id] = await delivered(api)
    clock.advance(seconds=api.workspace.lease_s + 1)  # the phone's lease runs out unshown ...
    assert (await api.poll("ada", "laptop")).message_ids == [message_id]  # ... and the laptop claims it

    before = len(claims)
    reply = await api.poll("ada", "phone", events=shown(message_id))
    assert reply.body["events"]["accepted"] == 0, reply
    assert reply.message_ids == []
    assert claims[before:] == ["phone"]
    assert await acks(api, "unacked") == 1 and await acks(api, "acked") == 0
    # The laptop never shows it: when its lease runs out (no notice), the phone gets it back.
    clock.advance(seconds=api.workspace.lease_s + 1)
    assert (await api.poll("ada", "phone")).message_ids == [message_id]


async def test_another_devices_report_leaves_the_phones_offer_to_the_phone(api: Api, claims: list[str]) -> None:
    [message_id] = await delivered(api)
    refused = await api.poll("ada", "laptop", events=shown(message_id))
    assert refused.body["events"]["accepted"] == 0 and refused.message_ids == []
    assert await acks(api, "acked") + await acks(api, "unacked") == 0
    before = len(claims)
    assert (await api.poll("ada", "phone", events=shown(message_id))).message_ids == []
    assert len(claims) == before and await acks(api, "acked") == 1


async def test_an_offer_left_unacknowledged_is_offered_again(api: Api, claims: list[str]) -> None:
    first, second = await delivered(api, count=2)
    before = len(claims)
    reply = await api.poll("ada", "phone", events=shown(first))
    assert reply.message_ids == [second]  # still the phone's, under its lease
    assert claims[before:] == ["phone"]
    assert await acks(api, "unacked") == 1


async def test_an_acknowledgement_on_another_process_claims_there_and_leaves_nothing_behind(
    api: Api, start_gateway: StartGateway, claims: list[str]
) -> None:
    """The offer came from `api`; the `shown` lands on `other`, which noted nothing and claims. A send
    follows; the phone's next poll on `api` repeats the `shown`: the note there predates the send."""
    other = await start_gateway()
    [first] = await delivered(api)
    before = len(claims)
    assert (await other.poll("ada", "phone", events=shown(first))).message_ids == []
    assert claims[before:] == ["phone"]
    assert await acks(other, "acked") + await acks(other, "unacked") + await acks(other, "refused") == 0

    second = await sent_id(other, "ada", "Second")
    reply = await asyncio.wait_for(api.poll("ada", "phone", wait=5, events=shown(first)), 4)
    assert reply.message_ids == [second]
    assert await acks(api, "refused") == 1


async def test_an_offer_held_by_another_device_keeps_the_person_out_of_memory(
    api: Api, clock: FixedClock, claims: list[str]
) -> None:
    """The phone's claim saw the laptop's offer (pending elsewhere): its acknowledgement proves
    nothing about the laptop's, whose lease can run out with no notice."""
    [theirs] = await delivered(api, device="laptop")  # offered to the laptop, never shown
    clock.advance(seconds=10)
    memory = api.client.app[MEMORY]
    counter = memory.mark()
    mine = await sent_id(api, "ada", "Mine")
    await wait_until(lambda: memory.mark() > counter, what="the notice, before the claim's mark")
    assert (await api.poll("ada", "phone", wait=10)).message_ids == [mine]
    before = len(claims)
    assert (await api.poll("ada", "phone", events=shown(mine))).message_ids == []
    assert claims[before:] == ["phone"]
    assert await acks(api, "acked") == 0
    clock.advance(seconds=api.workspace.lease_s - 5)  # the laptop's lease ran out, the phone's did not
    assert (await api.poll("ada", "phone")).message_ids == [theirs]
