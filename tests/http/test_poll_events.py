"""Acknowledge on the next poll: `POST /v1/poll` carries `events`, applied before the claim."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.http.keys import WAITERS
from tests.helpers import Api, assert_message_style, wait_until


async def offered(api: Api, user: str = "ada", device: str = "phone", **fields: object) -> str:
    sent = await api.send(user, **fields)
    polled = await api.poll(user, device)
    assert polled.message_ids == [sent.body["id"]], polled
    return str(sent.body["id"])


async def test_a_poll_applies_its_shown_reports_then_hands_out_the_next_message(api: Api) -> None:
    first = await offered(api)
    second = (await api.send("ada", "Second")).body["id"]
    # The claim limit would hand out both at once: send the second after the first was offered.
    polled = await api.poll("ada", "phone", events=[{"message_id": first, "type": "shown"}])
    assert polled.status == 200, polled
    assert polled.message_ids == [second]
    assert polled.body["events"] == {"accepted": 1, "rejected": []}
    read = await api.message(first)
    assert read.body["state"] == "shown"
    assert [(e["type"], e["device_id"]) for e in read.body["events"]] == [
        ("queued", None), ("offered", "phone"), ("shown", "phone"),
    ]
    # Shown is the device's for good: the next poll no longer offers the first message.
    again = await api.poll("ada", "phone")
    assert again.message_ids == [second]
    assert "events" not in again.body


async def test_a_persistent_message_shown_on_the_poll_comes_back_on_it(api: Api) -> None:
    banner = await offered(api, persistent=True)
    polled = await api.poll("ada", "phone", events=[{"message_id": banner, "type": "shown"}])
    assert polled.message_ids == [banner]
    assert polled.body["messages"][0]["persistent"] is True
    assert banner not in polled.body["lease_s"]  # shown: no lease any more
    dismissed = await api.poll("ada", "phone", events=[{"message_id": banner, "type": "dismissed"}])
    assert dismissed.message_ids == []
    assert (await api.message(banner)).body["state"] == "dismissed"


async def test_reports_on_messages_this_device_does_not_hold_are_rejected_and_the_poll_still_answers(
    api: Api,
) -> None:
    theirs = await offered(api, device="laptop")
    mine = (await api.send("ada", "Mine")).body["id"]
    unknown = str(uuid.uuid4())
    polled = await api.poll("ada", "phone", events=[
        {"message_id": theirs, "type": "shown"}, {"message_id": unknown, "type": "shown"},
    ])
    assert polled.status == 200, polled
    assert polled.message_ids == [mine]
    assert polled.body["events"]["accepted"] == 0
    assert [r["message_id"] for r in polled.body["events"]["rejected"]] == [theirs, unknown]
    assert (await api.message(theirs)).body["state"] == "offered"


async def test_a_repeated_shown_on_a_poll_is_recorded_once(api: Api) -> None:
    message_id = await offered(api)
    for _ in range(2):
        polled = await api.poll("ada", "phone", events=[{"message_id": message_id, "type": "shown"}])
        assert polled.body["events"] == {"accepted": 1, "rejected": []}
    assert await api.event_types(message_id) == ["queued", "offered", "shown"]


async def test_a_held_poll_applies_its_reports_before_it_parks(api: Api) -> None:
    message_id = await offered(api)
    held = asyncio.create_task(api.poll("ada", "phone", wait=5, events=[{"message_id": message_id, "type": "shown"}]))
    await wait_until(lambda: len(api.client.app[WAITERS]) == 1, what="the poll parked")
    assert (await api.message(message_id)).body["state"] == "shown"
    later = (await api.send("ada", "Later")).body["id"]
    answer = await asyncio.wait_for(held, 5)
    assert answer.status == 200, answer
    assert answer.message_ids == [later]
    assert answer.body["events"] == {"accepted": 1, "rejected": []}


GOOD = "good"  # stands for a valid `shown` report of the offered message, placed before the bad item
ID = "00000000-0000-0000-0000-000000000001"


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([GOOD, {"message_id": "m", "type": "shown"}], "events[1].message_id"),
        ([GOOD, {"type": "shown"}], "events[1]"),
        ([GOOD, "shown"], "events[1]"),
        ([GOOD, None], "events[1]"),
        ([GOOD, {"message_id": ID, "type": "shown"}, {"message_id": ID, "type": "seen"}], "events[2].type"),
        ([GOOD, {"message_id": ID, "type": "action"}], "events[1]"),
        ([GOOD, {"message_id": ID, "type": "action", "action": 7}], "events[1].action"),
        ([GOOD] * 101, "events"),
        ("shown", "events"),
        ({"message_id": ID}, "events"),
    ],
)
async def test_a_bad_events_array_is_refused_naming_the_field_and_nothing_is_applied_or_claimed(
    api: Api, events: object, field: str
) -> None:
    first = await offered(api)
    waiting = (await api.send("ada", "Waiting")).body["id"]
    if isinstance(events, list):
        events = [{"message_id": first, "type": "shown"} if item == GOOD else item for item in events]
    polled = await api.poll("ada", "phone", events=events)
    assert polled.status == 422, polled
    assert polled.error_code == "invalid_fields"
    assert field in polled.body["error"]["message"], polled
    assert_message_style(polled.body["error"]["message"])
    # Nothing applied: the good report before the bad item was not recorded ...
    assert (await api.message(first)).body["state"] == "offered"
    # ... and nothing claimed: the waiting message is still queued.
    assert (await api.message(waiting)).body["state"] == "queued"
