"""The message lifecycle through HTTP: lease, redelivery, persistence, expiry, recall, re-entry."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

import storage
from gateway.core.clock import FixedClock
from tests.helpers import Api

LEASE_S = 300


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Lease


async def test_same_device_gets_the_same_message_again_within_the_lease(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada", "Welcome")
    first = await api.poll("ada", "phone")
    assert first.message_ids == [sent.body["id"]]

    for _ in range(3):
        clock.advance(seconds=LEASE_S / 4)
        again = await api.poll("ada", "phone")
        assert again.message_ids == [sent.body["id"]], again
        assert again.body["messages"][0] == first.body["messages"][0]

    read = await api.message(sent.body["id"])
    assert read.body["state"] == "offered"
    assert read.body["device_id"] == "phone"
    assert [(e["type"], e["device_id"]) for e in read.body["events"]] == [("queued", None), ("offered", "phone")]


async def test_another_device_gets_nothing_within_the_lease(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada")
    assert (await api.poll("ada", "phone")).message_ids == [sent.body["id"]]

    assert (await api.poll("ada", "laptop")).message_ids == []
    clock.advance(seconds=LEASE_S - 1)
    assert (await api.poll("ada", "laptop")).message_ids == []

    read = await api.message(sent.body["id"])
    assert read.body["device_id"] == "phone"
    assert await api.event_types(sent.body["id"]) == ["queued", "offered"]


async def test_a_device_that_never_shows_loses_the_message_when_the_lease_runs_out(
    api: Api, clock: FixedClock
) -> None:
    sent = await api.send("ada")
    message_id = sent.body["id"]
    await api.poll("ada", "phone")
    offered_at = clock.now()

    read = await api.message(message_id)
    assert at(read.body["lease_expires_at"]) == offered_at + timedelta(seconds=LEASE_S)

    clock.advance(seconds=LEASE_S + 1)
    taken = await api.poll("ada", "laptop")
    assert taken.message_ids == [message_id]
    assert taken.body["tier"] == "active"
    assert (await api.poll("ada", "phone")).message_ids == []

    late = await api.show("ada", "phone", message_id)
    assert late.body == {
        "accepted": 0,
        "rejected": [{"message_id": message_id, "type": "shown", "code": "not_offered_to_device"}],
    }
    assert (await api.show("ada", "laptop", message_id)).body == {"accepted": 1, "rejected": []}

    read = await api.message(message_id)
    assert read.body["state"] == "shown"
    assert read.body["device_id"] == "laptop"
    assert [(e["type"], e["device_id"]) for e in read.body["events"]] == [
        ("queued", None), ("offered", "phone"), ("offered", "laptop"), ("shown", "laptop"),
    ]
    assert (await api.poll("ada", "phone")).message_ids == []


async def test_the_same_device_can_claim_again_after_its_lease_ran_out(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada")
    await api.poll("ada", "phone")
    clock.advance(seconds=LEASE_S + 1)

    assert (await api.poll("ada", "phone")).message_ids == [sent.body["id"]]
    read = await api.message(sent.body["id"])
    assert at(read.body["lease_expires_at"]) == clock.now() + timedelta(seconds=LEASE_S)
    assert [(e["type"], e["device_id"]) for e in read.body["events"]] == [
        ("queued", None), ("offered", "phone"), ("offered", "phone"),
    ]


async def test_a_poll_claims_new_messages_beside_those_it_already_holds(api: Api, clock: FixedClock) -> None:
    first = await api.send("ada", "First")
    assert (await api.poll("ada", "phone")).message_ids == [first.body["id"]]
    clock.advance(seconds=1)
    second = await api.send("ada", "Second")

    assert (await api.poll("ada", "phone")).message_ids == [first.body["id"], second.body["id"]]
    assert (await api.poll("ada", "laptop")).message_ids == []
    assert await api.event_types(first.body["id"]) == ["queued", "offered"]
    assert await api.event_types(second.body["id"]) == ["queued", "offered"]


async def test_messages_come_in_priority_order_then_oldest_first(api: Api, clock: FixedClock) -> None:
    late = await api.send("ada", "late", priority=5)
    clock.advance(seconds=1)
    urgent = await api.send("ada", "urgent", priority=-1)
    clock.advance(seconds=1)
    later = await api.send("ada", "later", priority=5)
    clock.advance(seconds=1)
    normal = await api.send("ada", "normal")

    polled = await api.poll("ada", "phone")
    assert polled.message_ids == [urgent.body["id"], normal.body["id"], late.body["id"], later.body["id"]]
    assert [m["priority"] for m in polled.body["messages"]] == [-1, 0, 5, 5]


# Persistent


async def test_a_persistent_message_returns_to_the_showing_device_until_dismissed(
    api: Api, clock: FixedClock
) -> None:
    sent = await api.send(
        "ada", persistent=True, content={"title": "Trial ends soon", "layout": "banner_top"}
    )
    message_id = sent.body["id"]
    assert (await api.poll("ada", "phone")).message_ids == [message_id]
    assert (await api.show("ada", "phone", message_id)).body["accepted"] == 1

    for step in ({"seconds": LEASE_S + 1}, {"hours": 5}, {"days": 3}):
        clock.advance(**step)
        polled = await api.poll("ada", "phone")
        assert polled.message_ids == [message_id], step
        assert polled.body["messages"][0]["persistent"] is True
        assert polled.body["messages"][0]["content"]["layout"] == "banner_top"
        assert (await api.poll("ada", "laptop")).message_ids == [], step

    assert (await api.dismiss("ada", "phone", message_id)).body == {"accepted": 1, "rejected": []}
    assert (await api.poll("ada", "phone")).message_ids == []
    clock.advance(seconds=LEASE_S + 1)
    assert (await api.poll("ada", "phone")).message_ids == []
    assert (await api.poll("ada", "laptop")).message_ids == []

    read = await api.message(message_id)
    assert read.body["state"] == "dismissed"
    # Returning a shown banner is not a new offer: one `offered`, however many polls.
    assert [e["type"] for e in read.body["events"]] == ["queued", "offered", "shown", "dismissed"]


async def test_a_shown_message_that_is_not_persistent_is_not_returned_again(api: Api) -> None:
    sent = await api.send("ada")
    await api.poll("ada", "phone")
    await api.show("ada", "phone", sent.body["id"])

    assert (await api.poll("ada", "phone")).message_ids == []
    assert (await api.poll("ada", "laptop")).message_ids == []


async def test_a_persistent_message_stops_when_it_expires(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada", persistent=True, ttl_s=3600)
    await api.poll("ada", "phone")
    await api.show("ada", "phone", sent.body["id"])

    clock.advance(seconds=3599)
    assert (await api.poll("ada", "phone")).message_ids == [sent.body["id"]]
    clock.advance(seconds=1)
    assert (await api.poll("ada", "phone")).message_ids == []


# Expiry


async def test_a_message_past_its_ttl_is_never_delivered_and_reads_as_expired(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada", ttl_s=60)
    message_id = sent.body["id"]
    assert at(sent.body["expires_at"]) == clock.now() + timedelta(seconds=60)

    clock.advance(seconds=60)
    assert (await api.message(message_id)).body["state"] == "expired"
    assert (await api.poll("ada", "phone")).message_ids == []
    assert (await api.poll("ada", "laptop")).message_ids == []

    read = await api.message(message_id)
    assert read.body["state"] == "expired"
    assert read.body["device_id"] is None
    assert [e["type"] for e in read.body["events"]] == ["queued", "expired"]
    assert at(read.body["events"][1]["at"]) == clock.now()

    recall = await api.recall(message_id)
    assert (recall.status, recall.error_code) == (409, "already_expired")


async def test_a_message_past_expires_at_is_never_delivered(api: Api, clock: FixedClock) -> None:
    expires_at = clock.now() + timedelta(hours=1)
    sent = await api.send("ada", expires_at=expires_at.isoformat())
    assert sent.status == 201, sent
    assert at(sent.body["expires_at"]) == expires_at

    clock.advance(hours=1, seconds=1)
    assert (await api.poll("ada", "phone")).message_ids == []
    assert await api.event_types(sent.body["id"]) == ["queued", "expired"]


async def test_an_offered_message_that_expires_under_its_lease_is_withdrawn(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada", ttl_s=120)
    message_id = sent.body["id"]
    assert (await api.poll("ada", "phone")).message_ids == [message_id]

    clock.advance(seconds=121)
    assert (await api.poll("ada", "phone")).message_ids == []
    late = await api.show("ada", "phone", message_id)
    assert late.body["rejected"] == [{"message_id": message_id, "type": "shown", "code": "not_offered_to_device"}]

    read = await api.message(message_id)
    assert read.body["state"] == "expired"
    assert [e["type"] for e in read.body["events"]] == ["queued", "offered", "expired"]


async def test_the_sweep_records_expiry_for_people_who_never_poll(
    api: Api, pool: asyncpg.Pool, clock: FixedClock
) -> None:
    sent = await api.send("ada", ttl_s=60)
    kept = await api.send("bob", ttl_s=3600)
    clock.advance(seconds=61)

    # The function the gateway's background sweeper runs.
    assert await storage.expire_messages(pool, now=clock.now()) == 1
    assert await storage.expire_messages(pool, now=clock.now()) == 0

    assert await api.event_types(sent.body["id"]) == ["queued", "expired"]
    assert (await api.message(kept.body["id"])).body["state"] == "queued"


# Recall


async def test_recalling_a_queued_message(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada")
    message_id = sent.body["id"]
    clock.advance(seconds=5)

    recalled = await api.recall(message_id)
    assert recalled.status == 200, recalled
    assert recalled.body["state"] == "recalled"
    assert (await api.poll("ada", "phone")).message_ids == []

    read = await api.message(message_id)
    assert read.body["state"] == "recalled"
    assert [e["type"] for e in read.body["events"]] == ["queued", "recalled"]
    assert at(read.body["events"][1]["at"]) == clock.now()


async def test_recalling_an_offered_message_takes_it_from_the_device(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada")
    message_id = sent.body["id"]
    assert (await api.poll("ada", "phone")).message_ids == [message_id]

    recalled = await api.recall(message_id)
    assert recalled.status == 200, recalled
    assert recalled.body["state"] == "recalled"

    assert (await api.poll("ada", "phone")).message_ids == []
    late = await api.show("ada", "phone", message_id)
    assert late.body["accepted"] == 0
    clock.advance(seconds=LEASE_S + 1)
    assert (await api.poll("ada", "laptop")).message_ids == []
    assert (await api.poll("ada", "phone")).message_ids == []
    assert await api.event_types(message_id) == ["queued", "offered", "recalled"]


async def test_recalling_twice_answers_the_same_and_records_once(api: Api) -> None:
    sent = await api.send("ada")
    first = await api.recall(sent.body["id"])
    second = await api.recall(sent.body["id"])
    assert (first.status, second.status) == (200, 200)
    assert second.body["state"] == "recalled"
    assert await api.event_types(sent.body["id"]) == ["queued", "recalled"]


async def test_a_shown_message_cannot_be_recalled(api: Api) -> None:
    sent = await api.send("ada")
    message_id = sent.body["id"]
    await api.poll("ada", "phone")
    await api.show("ada", "phone", message_id)

    refused = await api.recall(message_id)
    assert (refused.status, refused.error_code) == (409, "already_shown")
    assert (await api.message(message_id)).body["state"] == "shown"

    await api.dismiss("ada", "phone", message_id)
    refused = await api.recall(message_id)
    assert (refused.status, refused.error_code) == (409, "already_shown")
    assert await api.event_types(message_id) == ["queued", "offered", "shown", "dismissed"]


async def test_recalling_an_unknown_message_is_404(api: Api) -> None:
    for message_id in (str(uuid.uuid4()), "not-a-uuid"):
        missing = await api.recall(message_id)
        assert (missing.status, missing.error_code) == (404, "unknown_message"), message_id
        missing = await api.message(message_id)
        assert (missing.status, missing.error_code) == (404, "unknown_message"), message_id


# Re-entry


async def test_sending_the_same_content_again_queues_a_new_entry_delivered_once(
    api: Api, clock: FixedClock
) -> None:
    content = {"title": "Spring sale", "body": "20 % off this week"}
    first = await api.send("ada", content=content, campaign="spring")
    await api.poll("ada", "phone")
    await api.show("ada", "phone", first.body["id"])
    await api.dismiss("ada", "phone", first.body["id"])

    clock.advance(days=1)
    again = await api.send("ada", content=content, campaign="spring")
    assert again.status == 201, again
    assert again.body["id"] != first.body["id"]
    assert again.body["state"] == "queued"

    assert (await api.poll("ada", "laptop")).message_ids == [again.body["id"]]
    assert (await api.poll("ada", "phone")).message_ids == []
    await api.show("ada", "laptop", again.body["id"])
    clock.advance(seconds=LEASE_S + 1)
    for device in ("phone", "laptop", "tablet"):
        assert (await api.poll("ada", device)).message_ids == [], device

    listed = await api.person_messages("ada")
    states = {m["id"]: m["state"] for m in listed.body["messages"]}
    assert states == {first.body["id"]: "dismissed", again.body["id"]: "shown"}


async def test_two_identical_sends_are_two_entries(api: Api) -> None:
    content = {"title": "Reminder"}
    first = await api.send("ada", content=content)
    second = await api.send("ada", content=content)
    assert first.body["id"] != second.body["id"]

    polled = await api.poll("ada", "phone")
    assert sorted(polled.message_ids) == sorted([first.body["id"], second.body["id"]])
