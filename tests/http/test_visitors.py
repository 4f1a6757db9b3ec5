"""Anonymous visitors through HTTP (decision 0023): a visit broadcast, polls and reports without
proof, identify merging the visitor into the person, and every bad input a 422 naming its field."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from gateway.core.clock import FixedClock
from tests.helpers import Api, Reply, assert_message_style, wait_until

VISITOR = "anon_Q2x9vT4mLp0sWz7kYb3n"
OTHER_VISITOR = "anon_r8Jd2fKq5Xw1Hc6Vn0Ta"
CONTENT = {"title": "Welcome", "body": "Take the tour"}


async def visit_broadcast(api: Api, **fields: Any) -> Reply:
    body: dict[str, Any] = {"audience": {"visitors": True}, "content": CONTENT, **fields}
    return await api.request("POST", "/v1/broadcasts", json=body)


async def visitor_poll(api: Api, visitor: str, device_id: str, **fields: Any) -> Reply:
    body = {"site_id": api.site_id, "anonymous_id": visitor, "device_id": device_id, **fields}
    return await api.request("POST", "/v1/poll", json=body, auth=False)


async def visitor_report(api: Api, visitor: str, device_id: str, message_id: str, kind: str) -> Reply:
    body = {"site_id": api.site_id, "anonymous_id": visitor, "device_id": device_id,
            "events": [{"message_id": message_id, "type": kind}]}
    return await api.request("POST", "/v1/events", json=body, auth=False)


async def test_a_visit_broadcast_reaches_each_visitor_once(api: Api, clock: FixedClock) -> None:
    # Given with an offset, answered in UTC like every time the API writes.
    sent = await visit_broadcast(api, frequency="once", ends_at="2026-12-01T14:00:00+02:00")
    assert sent.status == 201, sent
    assert sent.body["audience"] == {"visitors": True, "frequency": "once", "ends_at": "2026-12-01T12:00:00Z"}
    assert sent.body["queued"] == 0

    first = await visitor_poll(api, VISITOR, "browser")
    assert first.status == 200, first
    assert [m["content"]["title"] for m in first.body["messages"]] == ["Welcome"]
    assert first.body["tier"] == "active"
    message_id = first.message_ids[0]
    assert (await visitor_report(api, VISITOR, "browser", message_id, "shown")).body["accepted"] == 1

    # Shown once: later polls of this visitor get nothing; another visitor gets its own copy.
    clock.advance(days=1)
    assert (await visitor_poll(api, VISITOR, "browser")).message_ids == []
    other = await visitor_poll(api, OTHER_VISITOR, "phone")
    assert len(other.message_ids) == 1 and other.message_ids != [message_id]
    read = await api.request("GET", f"/v1/broadcasts/{sent.body['id']}")
    assert (read.body["total"], read.body["counts"]["shown"], read.body["counts"]["offered"]) == (2, 1, 1)


async def test_every_n_hours_per_visitor(api: Api, clock: FixedClock) -> None:
    sent = await visit_broadcast(api, frequency={"every_hours": 6})
    assert sent.status == 201, sent
    assert sent.body["audience"]["frequency"] == {"every_hours": 6}
    first = await visitor_poll(api, VISITOR, "browser")
    await visitor_report(api, VISITOR, "browser", first.message_ids[0], "dismissed")
    clock.advance(hours=5, minutes=59)
    assert (await visitor_poll(api, VISITOR, "browser")).message_ids == []
    clock.advance(minutes=1)
    again = await visitor_poll(api, VISITOR, "browser")
    assert len(again.message_ids) == 1 and again.message_ids != first.message_ids


async def test_the_end_date_stops_it(api: Api, clock: FixedClock) -> None:
    """Unix seconds work as in `expires_at`; the copy expires at the end, and no one gets it after."""
    ends_at = clock.now() + timedelta(hours=2)
    sent = await visit_broadcast(api, ends_at=int(ends_at.timestamp()))
    assert sent.status == 201, sent
    assert sent.body["audience"]["frequency"] == "once"  # the default
    offered = await visitor_poll(api, VISITOR, "browser")
    assert offered.body["messages"][0]["expires_at"] == ends_at.isoformat().replace("+00:00", "Z")
    clock.advance(hours=2)
    assert (await visitor_poll(api, VISITOR, "browser")).message_ids == []
    assert (await visitor_poll(api, OTHER_VISITOR, "phone")).message_ids == []
    read = await api.request("GET", f"/v1/broadcasts/{sent.body['id']}")
    assert (read.body["total"], read.body["counts"]["expired"]) == (1, 1)


async def test_a_visitor_needs_no_proof_and_reaches_only_visitors(api: Api) -> None:
    """Under `required` proof a person's poll needs proof; a visitor's never does, and it cannot
    reach the person whose id happens to equal its visitor id."""
    assert (await api.patch_workspace(identity_mode="required")).status == 200
    assert (await api.send(VISITOR, "For the person")).status == 201
    assert (await api.poll(VISITOR, "browser")).error_code == "identity_proof_required"
    anonymous = await visitor_poll(api, VISITOR, "browser")
    assert anonymous.status == 200, anonymous
    assert anonymous.body["messages"] == []
    # A proof sent with a visitor id changes nothing.
    with_proof = await visitor_poll(api, VISITOR, "browser", user_hash="0" * 64)
    assert with_proof.status == 200 and with_proof.body["messages"] == []


async def test_a_held_visitor_poll_is_answered_by_the_send(api: Api) -> None:
    task = asyncio.create_task(visitor_poll(api, VISITOR, "browser", wait=20))

    # The visitor's poll parks (nothing is open yet); the send wakes the workspace's held polls.
    async def parked() -> bool:
        return await api.metric("mailslot_parked_polls") == 1

    await wait_until(parked, what="the visitor's poll parked")
    assert (await visit_broadcast(api)).status == 201
    answer = await asyncio.wait_for(task, 10)
    assert [m["content"]["title"] for m in answer.body["messages"]] == ["Welcome"]


async def test_identify_merges_the_visitor_and_once_stays_once(api: Api) -> None:
    assert (await visit_broadcast(api)).status == 201
    copy = (await visitor_poll(api, VISITOR, "laptop")).message_ids[0]
    assert (await visitor_report(api, VISITOR, "laptop", copy, "shown")).body["accepted"] == 1

    merged = await api.device_identify("ada", {"plan": "trial"}, device_id="laptop", anonymous_id=VISITOR)
    assert merged.status == 200, merged
    history = await api.person_messages("ada")
    assert [(m["id"], m["state"]) for m in history.body["messages"]] == [(copy, "shown")]
    # The person's events name the laptop as the visitor did.
    assert await api.event_types(copy) == ["queued", "offered", "shown"]
    # Ada's phone: the visit broadcast is already hers, shown once; it does not show again.
    assert (await api.poll("ada", "phone")).message_ids == []
    # And the laptop, now identified, acts on the message as ada.
    assert (await api.dismiss("ada", "laptop", copy)).body["accepted"] == 1


async def test_identify_carries_a_pending_offer_to_the_person(api: Api) -> None:
    assert (await visit_broadcast(api)).status == 201
    copy = (await visitor_poll(api, VISITOR, "laptop")).message_ids[0]
    assert (await api.device_identify("ada", {}, device_id="laptop", anonymous_id=VISITOR)).status == 200
    assert (await api.poll("ada", "laptop")).message_ids == [copy]
    # The old visitor id names no one now.
    assert (await visitor_report(api, VISITOR, "laptop", copy, "shown")).body["rejected"][0]["code"] == (
        "not_offered_to_device"
    )


async def test_visitors_of_one_workspace_are_not_another_workspaces(api: Api, other_api: Api) -> None:
    assert (await visit_broadcast(api)).status == 201
    assert (await visitor_poll(other_api, VISITOR, "browser")).message_ids == []
    assert len((await visitor_poll(api, VISITOR, "browser")).message_ids) == 1


async def test_a_disabled_workspace_refuses_visit_broadcasts(api: Api) -> None:
    assert (await api.patch_workspace(in_app_enabled=False)).status == 200
    refused = await visit_broadcast(api)
    assert (refused.status, refused.error_code) == (409, "in_app_disabled")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"frequency": "twice"}, "frequency"),
        ({"frequency": 6}, "frequency"),
        ({"frequency": {"every_hours": 0}}, "every_hours"),
        ({"frequency": {"every_hours": 8785}}, "every_hours"),
        ({"frequency": {"every_hours": "6"}}, "every_hours"),
        ({"frequency": {"every_hours": 1.5}}, "every_hours"),
        ({"frequency": {"every_hours": 6, "jitter": 1}}, "jitter"),
        ({"frequency": {}}, "every_hours"),
        ({"ends_at": "next week"}, "ends_at"),
        ({"ends_at": "2026-12-31T00:00:00"}, "ends_at"),
        ({"ends_at": "2026-11-28T11:59:59Z"}, "ends_at"),  # already passed (the clock is at 12:00)
        ({"ends_at": -1}, "ends_at"),
        ({"ends_at": True}, "ends_at"),
        ({"ttl_s": 3600}, "ttl_s"),
        ({"expires_at": "2026-12-31T00:00:00Z"}, "expires_at"),
        ({"content": {"title": "Hi {{ customer.first_name }}"}}, "content"),
    ],
)
async def test_bad_visit_fields_are_422_naming_the_field(api: Api, fields: dict[str, Any], field: str) -> None:
    reply = await visit_broadcast(api, **fields)
    assert (reply.status, reply.error_code) == (422, "invalid_fields"), reply
    assert f"`{field}`" in reply.body["error"]["message"] or f".{field}`" in reply.body["error"]["message"], reply
    assert_message_style(reply.body["error"]["message"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"audience": {"all": True}, "frequency": "once"}, "frequency"),
        ({"audience": {"ids": ["ada"]}, "ends_at": "2026-12-31T00:00:00Z"}, "ends_at"),
        ({"audience": {"visitors": True, "all": True}}, "audience"),
        ({"audience": {"visitors": "yes"}}, "visitors"),
    ],
)
async def test_visit_fields_belong_to_a_visitors_audience(api: Api, body: dict[str, Any], field: str) -> None:
    reply = await api.request("POST", "/v1/broadcasts", json={"content": CONTENT, **body})
    assert (reply.status, reply.error_code) == (422, "invalid_fields"), reply
    assert field in reply.body["error"]["message"], reply


BAD_VISITOR_IDS = [
    "visitor-1",  # no anon_ prefix
    "anon_short",  # too short to be random
    "anon_" + "x" * 65,
    "anon_0123456789abcdef/..",
    12345,
]


@pytest.mark.parametrize("path", ["/v1/poll", "/v1/events"])
@pytest.mark.parametrize(
    "fields",
    [*({"anonymous_id": bad} for bad in BAD_VISITOR_IDS), {"anonymous_id": VISITOR, "user": "ada"}, {}],
)
async def test_bad_visitor_ids_are_422(api: Api, path: str, fields: dict[str, Any]) -> None:
    body: dict[str, Any] = {"site_id": api.site_id, "device_id": "browser", **fields}
    if path == "/v1/events":
        body["events"] = [{"message_id": "00000000-0000-4000-8000-000000000000", "type": "shown"}]
    reply = await api.request("POST", path, json=body, auth=False)
    assert (reply.status, reply.error_code) == (422, "invalid_fields"), reply
    message = reply.body["error"]["message"]
    assert "`anonymous_id`" in message or ("`user`" in message and "`anonymous_id`" in message), reply
    assert_message_style(message)


@pytest.mark.parametrize("bad", BAD_VISITOR_IDS)
async def test_identify_refuses_a_bad_visitor_id(api: Api, bad: Any) -> None:
    reply = await api.device_identify("ada", {}, anonymous_id=bad)
    assert (reply.status, reply.error_code) == (422, "invalid_fields"), reply
    assert "`anonymous_id`" in reply.body["error"]["message"], reply


async def test_a_resend_gives_each_visitor_one_more_copy_until_the_end(api: Api, clock: FixedClock) -> None:
    """Re-entry as for any broadcast: everyone who entered gets one more copy, which ends with the rule."""
    ends_at = clock.now() + timedelta(days=2)
    sent = await visit_broadcast(api, ends_at=ends_at.isoformat())
    copy = (await visitor_poll(api, VISITOR, "browser")).message_ids[0]
    await visitor_report(api, VISITOR, "browser", copy, "dismissed")
    resent = await api.request("POST", f"/v1/broadcasts/{sent.body['id']}/resend")
    assert (resent.status, resent.body["queued"]) == (200, 1), resent
    again = await visitor_poll(api, VISITOR, "browser")
    assert len(again.message_ids) == 1 and again.message_ids != [copy]
    assert again.body["messages"][0]["expires_at"] == ends_at.isoformat().replace("+00:00", "Z")
    clock.advance(days=2)
    late = await api.request("POST", f"/v1/broadcasts/{sent.body['id']}/resend")
    assert (late.status, late.error_code) == (409, "broadcast_expired"), late
