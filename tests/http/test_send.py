"""Sending: expiry at send time and `Idempotency-Key` (a retried send never queues twice)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import orjson

from gateway.core.clock import FixedClock
from tests.helpers import Api


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_send_is_queued_with_the_default_expiry(api: Api, clock: FixedClock) -> None:
    sent = await api.send("ada", "Welcome", campaign="onboarding", properties={"screen": "home"})
    assert sent.status == 201, sent
    assert "Idempotent-Replayed" not in sent.headers
    body = sent.body
    assert body["to"] == {"id": "ada", "email": None}
    assert body["state"] == "queued"
    assert body["device_id"] is None
    assert body["campaign"] == "onboarding"
    assert body["properties"] == {"screen": "home"}
    assert at(body["created_at"]) == clock.now()
    assert at(body["expires_at"]) == clock.now() + timedelta(days=30)


async def test_ttl_s_and_expires_at_set_the_expiry(api: Api, clock: FixedClock) -> None:
    by_ttl = await api.send("ada", ttl_s=90)
    assert at(by_ttl.body["expires_at"]) == clock.now() + timedelta(seconds=90)

    when = clock.now() + timedelta(days=2)
    by_iso = await api.send("ada", expires_at=when.isoformat())
    by_unix = await api.send("ada", expires_at=int(when.timestamp()))
    assert (by_iso.status, by_unix.status) == (201, 201)
    assert at(by_iso.body["expires_at"]) == when
    assert at(by_unix.body["expires_at"]) == when


async def test_expires_at_reaches_the_last_second_of_year_9999(api: Api) -> None:
    # Finding: Unix seconds from 253402300800 (year 10000) on were a 500.
    by_unix = await api.send("ada", expires_at=253_402_300_799)
    by_iso = await api.send("ada", expires_at="9999-12-31T23:59:59Z")
    by_offset = await api.send("ada", expires_at="9999-12-31T23:59:59+01:00")
    assert (by_unix.status, by_iso.status, by_offset.status) == (201, 201, 201), (by_unix, by_iso, by_offset)
    assert at(by_unix.body["expires_at"]) == at(by_iso.body["expires_at"]) == at("9999-12-31T23:59:59Z")
    assert (await api.poll("ada", "phone")).status == 200


async def test_expires_at_in_the_past_is_refused_and_queues_nothing(api: Api, clock: FixedClock) -> None:
    for expires_at in (
        (clock.now() - timedelta(seconds=1)).isoformat(),
        clock.now().isoformat(),
        int((clock.now() - timedelta(days=1)).timestamp()),
    ):
        refused = await api.send("ada", expires_at=expires_at)
        assert (refused.status, refused.error_code) == (422, "expires_at_in_past"), expires_at

    assert (await api.poll("ada", "phone")).message_ids == []
    listed = await api.person_messages("ada")
    assert (listed.status, listed.error_code) == (404, "unknown_person")


# Idempotency-Key


async def test_a_retried_send_returns_the_first_message_and_queues_nothing(api: Api) -> None:
    key = {"Idempotency-Key": "order-1234-welcome"}
    first = await api.send("ada", "Welcome", headers=key)
    retry = await api.send("ada", "Welcome", headers=key)

    assert first.status == 201, first
    assert "Idempotent-Replayed" not in first.headers
    assert retry.status == 200, retry
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.body == first.body

    listed = await api.person_messages("ada")
    assert [m["id"] for m in listed.body["messages"]] == [first.body["id"]]
    assert await api.event_types(first.body["id"]) == ["queued"]
    assert (await api.poll("ada", "phone")).message_ids == [first.body["id"]]


async def test_a_replay_answers_with_the_message_as_it_is_now(api: Api) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = await api.send("ada", headers=key)
    await api.poll("ada", "phone")
    await api.show("ada", "phone", first.body["id"])

    retry = await api.send("ada", headers=key)
    assert retry.status == 200, retry
    assert retry.body["id"] == first.body["id"]
    assert retry.body["state"] == "shown"
    assert (await api.poll("ada", "laptop")).message_ids == []


async def test_the_body_is_compared_by_content_not_by_key_order(api: Api) -> None:
    key = "reordered"
    first = {"to": {"id": "ada"}, "content": {"title": "Hi", "body": "there"}, "priority": 2}
    second = {"priority": 2, "content": {"body": "there", "title": "Hi"}, "to": {"id": "ada"}}
    sent = await api.request("POST", "/v1/messages", data=orjson.dumps(first),
                             headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    retry = await api.request("POST", "/v1/messages", data=orjson.dumps(second),
                              headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    assert (sent.status, retry.status) == (201, 200)
    assert retry.body["id"] == sent.body["id"]


async def test_the_same_key_with_another_body_is_refused(api: Api) -> None:
    key = {"Idempotency-Key": "order-1234-welcome"}
    first = await api.send("ada", "Welcome", headers=key)
    for changed in (
        api.send("ada", "Welcome back", headers=key),
        api.send("bob", "Welcome", headers=key),
        api.send("ada", "Welcome", headers=key, priority=1),
    ):
        refused = await changed
        assert (refused.status, refused.error_code) == (422, "idempotency_key_reused"), refused

    listed = await api.person_messages("ada")
    assert [m["id"] for m in listed.body["messages"]] == [first.body["id"]]
    assert (await api.poll("bob", "phone")).message_ids == []


async def test_distinct_keys_queue_distinct_messages(api: Api) -> None:
    first = await api.send("ada", headers={"Idempotency-Key": "a"})
    second = await api.send("ada", headers={"Idempotency-Key": "b"})
    assert (first.status, second.status) == (201, 201)
    assert first.body["id"] != second.body["id"]


async def test_concurrent_sends_with_one_key_queue_exactly_one_message(api: Api) -> None:
    key = {"Idempotency-Key": "burst"}
    replies = await asyncio.gather(*(api.send("ada", "Once", headers=key) for _ in range(10)))

    assert sorted(r.status for r in replies) == [200] * 9 + [201], replies
    assert len({r.body["id"] for r in replies}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in replies) == 9

    message_id = replies[0].body["id"]
    listed = await api.person_messages("ada")
    assert [m["id"] for m in listed.body["messages"]] == [message_id]
    assert await api.event_types(message_id) == ["queued"]
    assert (await api.poll("ada", "phone")).message_ids == [message_id]
