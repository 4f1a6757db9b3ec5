"""The lease as a device sees it: counted from when the claim is answered, never overstated.

A claim answered late (a paused database, a slow network) must not let a device show a message
whose lease has run out on the server, where another device may already have claimed it.
"""

from __future__ import annotations

import asyncio

from gateway.core.clock import FixedClock
from gateway.http.keys import POLLER
from tests.helpers import Api

LEASE_S = 300


async def test_each_offer_carries_its_lease_left_in_seconds(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada")
    message_id = sent.body["id"]
    first = await api.poll("ada", "phone")
    assert first.message_ids == [message_id]
    assert first.body["lease_s"] == {message_id: LEASE_S}

    clock.advance(seconds=100)
    again = await api.poll("ada", "phone")
    assert again.message_ids == [message_id]
    assert again.body["lease_s"] == {message_id: LEASE_S - 100}

    assert (await api.poll("ada", "laptop")).body["lease_s"] == {}


async def test_a_shown_persistent_message_has_no_lease(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada", persistent=True, content={"title": "Banner", "layout": "banner_top"})
    await api.poll("ada", "phone")
    await api.show("ada", "phone", sent.body["id"])
    polled = await api.poll("ada", "phone")
    assert polled.message_ids == [sent.body["id"]]
    assert polled.body["lease_s"] == {}


async def test_an_offer_with_under_a_second_left_is_not_handed_out(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada")
    message_id = sent.body["id"]
    await api.poll("ada", "phone")

    clock.advance(seconds=LEASE_S - 0.5)
    nearly_gone = await api.poll("ada", "phone")
    assert nearly_gone.message_ids == []
    assert nearly_gone.body["lease_s"] == {}
    assert nearly_gone.body["tier"] == "active"  # it will be claimable in a moment: poll soon

    clock.advance(seconds=1)
    assert (await api.poll("ada", "laptop")).message_ids == [message_id]


async def test_a_claim_answered_after_its_lease_ran_out_is_not_shown_on_two_devices(
    client, api: Api, clock: FixedClock  # type: ignore[no-untyped-def]
) -> None:
    """The production incident: a claim stalled past its lease while another device claimed."""
    sent = await api.send("ada")
    message_id = sent.body["id"]
    poller = client.server.app[POLLER]
    claimed = asyncio.Event()
    release = asyncio.Event()

    async def stall_first_answer() -> None:
        poller.before_answer = None  # only the phone's poll is held
        claimed.set()
        await asyncio.wait_for(release.wait(), 10)

    poller.before_answer = stall_first_answer
    phone = asyncio.create_task(api.poll("ada", "phone"))
    await asyncio.wait_for(claimed.wait(), 10)

    # While the phone's answer is on its way, its lease runs out and the laptop claims.
    clock.advance(seconds=LEASE_S + 1)
    laptop = await api.poll("ada", "laptop")
    assert laptop.message_ids == [message_id]
    assert laptop.body["lease_s"] == {message_id: LEASE_S}

    release.set()
    late = await asyncio.wait_for(phone, 10)
    assert late.status == 200, late
    assert late.message_ids == [], "the phone would show a message the laptop shows too"
    assert late.body["lease_s"] == {}

    assert (await api.show("ada", "laptop", message_id)).body == {"accepted": 1, "rejected": []}
    read = await api.message(message_id)
    assert [e["device_id"] for e in read.body["events"] if e["type"] == "shown"] == ["laptop"]


async def test_a_claim_answered_late_but_within_its_lease_tells_the_device_less(
    client, api: Api, clock: FixedClock  # type: ignore[no-untyped-def]
) -> None:
    sent = await api.send("ada")
    poller = client.server.app[POLLER]

    async def slow_answer() -> None:
        clock.advance(seconds=120.4)  # the answer took two minutes to leave the database

    poller.before_answer = slow_answer
    polled = await api.poll("ada", "phone")
    assert polled.body["lease_s"] == {sent.body["id"]: LEASE_S - 121}
