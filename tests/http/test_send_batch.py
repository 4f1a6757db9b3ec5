"""Batch sends: each message its own result, one bad message never loses the others, retries replay."""

from __future__ import annotations

import io
from typing import Any

import orjson

from gateway.http.keys import POOL, WAITERS
from tests.helpers import Api, Reply, wait_until
from tests.http.test_long_poll import answer

BATCH = "/v1/messages/batch"


def item(to: str | dict[str, str], title: str = "Hello", **fields: Any) -> dict[str, Any]:
    recipient = {"id": to} if isinstance(to, str) else to
    return {"to": recipient, "content": {"title": title, "body": "A message for you"}, **fields}


async def batch(api: Api, *messages: Any, **fields: Any) -> Reply:
    body = orjson.dumps({"messages": list(messages), **fields})
    # Over 1 MB, aiohttp's client wants a file-like body (it warns about raw bytes).
    data: Any = io.BytesIO(body) if len(body) > 1_000_000 else body
    return await api.request("POST", BATCH, data=data, headers={"Content-Type": "application/json"})


async def parked(api: Api, count: int) -> None:
    """Wait until `count` polls are parked and no claim is running."""
    app = api.client.app
    waiters, pool = app[WAITERS], app[POOL]
    await wait_until(lambda: len(waiters) == count and pool.get_idle_size() == pool.get_size(),
                     what=f"{count} parked polls")


async def queued_titles(api: Api, person: str) -> list[str]:
    reply = await api.person_messages(person)
    if reply.status == 404 and reply.error_code == "unknown_person":
        return []  # nothing was ever queued for them
    assert reply.status == 200, reply
    return sorted(m["content"]["title"] for m in reply.body["messages"])


async def test_a_batch_queues_each_message_and_answers_each_as_a_single_send_would(api: Api) -> None:
    reply = await batch(api, item("ada", "one"), item({"email": "Bob@Example.com"}, "two"), item("ada", "three"))
    assert reply.status == 200, reply
    assert (reply.body["queued"], reply.body["replayed"], reply.body["failed"]) == (3, 0, 0)
    results = reply.body["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [r["status"] for r in results] == [201, 201, 201]
    assert [r["message"]["content"]["title"] for r in results] == ["one", "two", "three"]
    assert results[1]["message"]["to"] == {"id": None, "email": "bob@example.com"}
    single = await api.send("ada", "four")
    assert set(results[0]["message"]) == set(single.body)
    assert results[0]["message"]["state"] == "queued"

    assert await queued_titles(api, "ada") == ["four", "one", "three"]
    phone = await api.poll("bob@example.com", "phone")
    assert [m["content"]["title"] for m in phone.body["messages"]] == ["two"]
    for result in results:
        assert await api.event_types(result["message"]["id"]) in (["queued"], ["queued", "offered"])


async def test_a_batch_reaches_a_person_known_by_id_and_email_under_either(api: Api) -> None:
    assert (await api.identify("cyd", email="cyd@example.com")).status == 200
    reply = await batch(api, item({"email": "cyd@example.com"}, "by email"), item("cyd", "by id"))
    assert [r["message"]["to"] for r in reply.body["results"]] == [{"id": "cyd", "email": "cyd@example.com"}] * 2
    assert await queued_titles(api, "cyd") == ["by email", "by id"]


async def test_one_bad_message_gets_its_own_error_and_the_others_are_sent(api: Api) -> None:
    reply = await batch(
        api,
        item("ada", "good 0"),
        item({"id": "ada", "email": "ada@example.com"}, "two recipients"),
        item("ada", "past", expires_at=1),
        item("ada", "typo", priorty=3),
        "not an object",
        {"to": {"id": "ada"}, "template_id": "00000000-0000-0000-0000-000000000000"},
        item("ada", "{{ customer.plan_name }}", strict=True),
        item("ada", "good 7", priority="high"),
        item("ada", "good 8"),
    )
    assert reply.status == 200, reply
    results = reply.body["results"]
    assert [r["index"] for r in results] == list(range(9))
    assert [r["status"] for r in results] == [201, 422, 422, 422, 422, 422, 422, 422, 201]
    codes = [r.get("error", {}).get("code") for r in results]
    assert codes == [None, "invalid_fields", "expires_at_in_past", "invalid_fields", "invalid_fields",
                     "unknown_template", "invalid_template", "invalid_fields", None]
    assert "`$.messages[1].to`" in results[1]["error"]["message"]
    assert "`$.messages[3]`" in results[3]["error"]["message"] and "priorty" in results[3]["error"]["message"]
    assert "`$.messages[7].priority`" in results[7]["error"]["message"]
    assert (reply.body["queued"], reply.body["failed"]) == (2, 7)
    assert await queued_titles(api, "ada") == ["good 0", "good 8"]


async def test_a_batch_of_only_bad_messages_queues_nothing(api: Api) -> None:
    reply = await batch(api, item("ada", expires_at=1), item({"id": "ada", "email": "a@b.c"}))
    assert reply.status == 200, reply
    assert [r["status"] for r in reply.body["results"]] == [422, 422]
    assert await queued_titles(api, "ada") == []


async def test_a_malformed_batch_is_refused_naming_the_field_and_queues_nothing(api: Api) -> None:
    for body, status, where in (
        ({"messages": []}, 422, "`$.messages`"),
        ({"messages": [item("ada")] * 1001}, 422, "`$.messages`"),
        ({}, 422, "`messages`"),
        ({"messages": item("ada")}, 422, "`$.messages`"),
        ({"messages": [item("ada")], "extra": 1}, 422, "`extra`"),
        ([item("ada")], 422, "JSON object"),
    ):
        reply = await api.request("POST", BATCH, json=body)
        assert reply.status == status, (body if len(str(body)) < 200 else "...", reply)
        assert where in reply.body["error"]["message"], reply
    for data, code in ((b"", "empty_body"), (b"{not json", "malformed_json")):
        reply = await api.request("POST", BATCH, data=data, headers={"Content-Type": "application/json"})
        assert (reply.status, reply.error_code) == (400, code), reply
    assert await queued_titles(api, "ada") == []


async def test_a_batch_needs_the_api_key(api: Api) -> None:
    reply = await api.request("POST", BATCH, json={"messages": [item("ada")]}, auth=False)
    assert (reply.status, reply.error_code) == (401, "unauthorized")
    assert await queued_titles(api, "ada") == []


async def test_a_thousand_messages_fit_in_one_batch_beyond_the_single_body_limit(api: Api) -> None:
    messages = [item(f"person-{i}", f"message {i}") for i in range(1000)]
    reply = await batch(api, *messages)
    assert reply.status == 200, reply
    assert reply.body["queued"] == 1000
    ids = [r["message"]["id"] for r in reply.body["results"]]
    assert len(set(ids)) == 1000
    assert await queued_titles(api, "person-999") == ["message 999"]


async def test_a_batch_body_past_its_limit_is_refused(api: Api) -> None:
    huge = [item("ada", "x" * 200, properties={"pad": "y" * 8000})] * 600
    reply = await batch(api, *huge)
    assert (reply.status, reply.error_code) == (413, "body_too_large"), reply
    # The single send keeps its own, smaller limit.
    single = await api.send("ada", properties={"pad": "y" * 70_000})
    assert (single.status, single.error_code) == (413, "body_too_large")
    assert await queued_titles(api, "ada") == []


async def test_a_retried_batch_replays_every_message_and_queues_nothing_new(api: Api) -> None:
    messages = [item("ada", "one", idempotency_key="k-1"), item("bob", "two", idempotency_key="k-2"),
                item("ada", "three")]
    first = await batch(api, *messages[:2])
    assert [r["status"] for r in first.body["results"]] == [201, 201]
    again = await batch(api, *messages[:2])
    assert again.status == 200, again
    assert [r["status"] for r in again.body["results"]] == [200, 200]
    assert [r["replayed"] for r in again.body["results"]] == [True, True]
    assert ([r["message"]["id"] for r in again.body["results"]]
            == [r["message"]["id"] for r in first.body["results"]])
    assert (again.body["queued"], again.body["replayed"]) == (0, 2)
    # A retry with one more message sends only that one.
    third = await batch(api, *messages)
    assert [r["status"] for r in third.body["results"]] == [200, 200, 201]
    assert await queued_titles(api, "ada") == ["one", "three"]
    assert await queued_titles(api, "bob") == ["two"]


async def test_a_key_reused_for_another_message_is_that_items_error_only(api: Api) -> None:
    await batch(api, item("ada", "one", idempotency_key="k-1"))
    reply = await batch(api, item("ada", "changed", idempotency_key="k-1"), item("ada", "two", idempotency_key="k-2"))
    assert [r["status"] for r in reply.body["results"]] == [422, 201]
    assert reply.body["results"][0]["error"]["code"] == "idempotency_key_reused"
    assert await queued_titles(api, "ada") == ["one", "two"]


async def test_one_key_twice_in_a_batch_queues_once(api: Api) -> None:
    reply = await batch(api, item("ada", "same", idempotency_key="k"), item("ada", "same", idempotency_key="k"),
                        item("ada", "other", idempotency_key="k"))
    assert reply.status == 200, reply
    results = reply.body["results"]
    assert [r["status"] for r in results] == [201, 200, 422]
    assert results[1]["message"]["id"] == results[0]["message"]["id"]
    assert results[2]["error"]["code"] == "idempotency_key_reused"
    assert await queued_titles(api, "ada") == ["same"]


async def test_a_batch_message_replays_a_single_send_with_the_same_key_and_body(api: Api) -> None:
    single = await api.send("ada", "once", headers={"Idempotency-Key": "shared"})
    assert single.status == 201
    reply = await batch(api, item("ada", "once", idempotency_key="shared"))
    assert reply.body["results"][0]["status"] == 200
    assert reply.body["results"][0]["message"]["id"] == single.body["id"]
    assert await queued_titles(api, "ada") == ["once"]


async def test_a_bad_idempotency_key_is_that_items_error(api: Api) -> None:
    reply = await batch(api, item("ada", idempotency_key="has space"), item("ada", idempotency_key=""),
                        item("ada", "fine"))
    assert [r["status"] for r in reply.body["results"]] == [422, 422, 201]
    assert "idempotency_key" in reply.body["results"][0]["error"]["message"]


async def test_a_disabled_workspace_refuses_the_whole_batch(api: Api) -> None:
    assert (await api.patch_workspace(in_app_enabled=False)).status == 200
    reply = await batch(api, item("ada"), item("bob"))
    assert (reply.status, reply.error_code) == (409, "in_app_disabled")
    assert (await api.patch_workspace(in_app_enabled=True)).status == 200
    assert await queued_titles(api, "ada") == []


async def test_batch_messages_are_personalized_and_use_templates(api: Api) -> None:
    assert (await api.identify("ada", first_name="Ada")).status == 200
    template = await api.request("POST", "/v1/templates", json={
        "name": "welcome", "content": {"title": "Welcome {{ customer.first_name | default: 'friend' }}"},
        "properties": {"from": "template"}})
    assert template.status == 201, template
    reply = await batch(
        api,
        item("ada", "Hi {{ customer.first_name }}, {{ data.n }}", data={"n": 1}),
        {"to": {"id": "ada"}, "template_id": template.body["id"]},
        {"to": {"id": "new-person"}, "template_id": template.body["id"], "properties": {"own": True}},
    )
    assert reply.status == 200, reply
    results = reply.body["results"]
    assert [r["message"]["content"]["title"] for r in results] == ["Hi Ada, 1", "Welcome Ada", "Welcome friend"]
    assert results[2]["message"]["properties"] == {"from": "template", "own": True}


async def test_a_batch_wakes_the_held_polls_of_its_people(api: Api) -> None:
    assert (await api.identify("ada")).status == 200
    held = api.hold("new-person", "phone", wait=25)
    other = api.hold("ada", "laptop", wait=25)
    await parked(api, 2)
    reply = await batch(api, item("new-person", "to the new person"), item("ada", "to ada"))
    assert reply.body["queued"] == 2
    answers = [await answer(held), await answer(other)]
    assert [[m["content"]["title"] for m in a.body["messages"]] for a in answers] == [["to the new person"],
                                                                                       ["to ada"]]
