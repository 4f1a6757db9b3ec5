"""Broadcasts through HTTP: attribute filters, one device each, resend, recall, live counts, Liquid."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from gateway.core.clock import FixedClock
from gateway.http.keys import WAITERS
from tests.helpers import Api, Reply, wait_until

STATES = ("queued", "offered", "shown", "dismissed", "expired", "recalled")
COUNT_KEYS = {"queued", "offered", "shown", "action", "dismissed", "expired", "recalled"}
CONTENT = {"title": "Spring sale", "body": "20% off this week"}
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"

# Dates as Unix seconds: 2023-11-14, 2025-11-09, 2025-12-06, 2026-03-01.
Y2023, Y2025_NOV, Y2025_DEC, Y2026 = 1_700_000_000, 1_762_700_000, 1_765_000_000, 1_772_323_200

# Who matches FILTER: pro customers who joined in 2025 or later, or anyone with more than 10 seats.
FILTER = {"or": [
    {"and": [{"attribute": "plan_name", "op": "eq", "value": "pro"},
             {"attribute": "created_at", "op": "gte", "value": "2025-01-01T00:00:00Z"}]},
    {"attribute": "seats", "op": "gt", "value": 10},
]}
PEOPLE: dict[str, dict[str, Any]] = {
    "ada": {"plan_name": "pro", "created_at": Y2023, "seats": 12},      # seats > 10
    "bob": {"plan_name": "free", "created_at": Y2025_NOV, "seats": 3},
    "cyd": {"plan_name": "pro", "created_at": Y2025_DEC},                # pro, joined 2025, no seats
    "dee": {},                                                           # no attributes at all
    "eve": {"plan_name": "pro", "seats": "50"},                          # no created_at; seats as text
    "fay": {"plan_name": "enterprise", "created_at": Y2026, "seats": 10},
    "gus": {"plan_name": "pro", "created_at": Y2026, "seats": 1.5},
}
MATCHING = ["ada", "cyd", "gus"]


async def broadcast(api: Api, audience: dict[str, Any], content: dict[str, Any] | None = None,
                    **fields: Any) -> Reply:
    return await api.request("POST", "/v1/broadcasts",
                             json={"audience": audience, "content": content or CONTENT, **fields})


async def read(api: Api, broadcast_id: str) -> dict[str, Any]:
    reply = await api.request("GET", f"/v1/broadcasts/{broadcast_id}")
    assert reply.status == 200, reply
    assert_counts_add_up(reply.body)
    body: dict[str, Any] = reply.body
    return body


async def resend(api: Api, broadcast_id: str) -> Reply:
    return await api.request("POST", f"/v1/broadcasts/{broadcast_id}/resend")


async def recall(api: Api, broadcast_id: str) -> Reply:
    return await api.request("DELETE", f"/v1/broadcasts/{broadcast_id}")


def assert_counts_add_up(view: dict[str, Any]) -> None:
    counts = view["counts"]
    assert set(counts) == COUNT_KEYS, view
    assert sum(counts[state] for state in STATES) == view["total"], view
    assert counts["action"] <= counts["shown"] + counts["dismissed"], view
    assert view["states"] == {state: counts[state] for state in STATES}, view


def counts(**nonzero: int) -> dict[str, int]:
    return {key: nonzero.get(key, 0) for key in COUNT_KEYS}


async def identify_all(api: Api, people: dict[str, dict[str, Any]]) -> None:
    for person, attributes in people.items():
        reply = await api.identify(person, **attributes)
        assert reply.status == 200, reply


async def race_two_devices(api: Api, person: str) -> dict[str, list[str]]:
    """Both devices of a person poll at once; what each got."""
    phone, laptop = await asyncio.gather(api.poll(person, "phone"), api.poll(person, "laptop"))
    assert phone.status == laptop.status == 200, (phone, laptop)
    return {"phone": phone.message_ids, "laptop": laptop.message_ids}


async def deliver_once(api: Api, person: str) -> tuple[str, str]:
    """Race two devices; exactly one gets exactly one message. Returns (device, message id)."""
    got = await race_two_devices(api, person)
    winners = [(device, ids) for device, ids in got.items() if ids]
    assert len(winners) == 1 and len(winners[0][1]) == 1, (person, got)
    device, (message_id,) = winners[0]
    return device, message_id


# Filters


async def test_a_filter_broadcast_reaches_exactly_the_matching_people_on_one_device_each(
    api: Api, other_api: Api
) -> None:
    await identify_all(api, PEOPLE)
    # The same attributes in another workspace: never part of this workspace's audience.
    await identify_all(other_api, {"ada": PEOPLE["ada"], "cyd": PEOPLE["cyd"]})

    sent = await broadcast(api, {"filter": FILTER}, campaign="spring")
    assert sent.status == 201, sent
    assert sent.body["status"] == "queued"
    assert sent.body["audience"] == {"filter": FILTER}
    assert sent.body["queued"] == len(MATCHING)
    assert sent.body["total"] == len(MATCHING)
    assert sent.body["counts"] == counts(queued=len(MATCHING))
    assert_counts_add_up(sent.body)

    delivered = {}
    for person in PEOPLE:
        if person in MATCHING:
            device, message_id = await deliver_once(api, person)
            delivered[person] = message_id
            read_message = await api.message(message_id)
            assert read_message.body["to"]["id"] == person
            assert read_message.body["device_id"] == device
            assert read_message.body["content"]["title"] == CONTENT["title"]
            assert read_message.body["campaign"] == "spring"
        else:
            assert await race_two_devices(api, person) == {"phone": [], "laptop": []}, person
    assert len(set(delivered.values())) == len(MATCHING)
    for person in ("ada", "cyd"):
        assert (await other_api.poll(person, "phone")).message_ids == []

    view = await read(api, sent.body["id"])
    assert view["counts"] == counts(offered=len(MATCHING))


async def test_people_without_the_attribute_match_only_negations(api: Api) -> None:
    await identify_all(api, PEOPLE)
    cases = [
        ({"attribute": "plan_name", "op": "ne", "value": "pro"}, {"bob", "dee", "fay"}),
        ({"not": {"attribute": "plan_name", "op": "eq", "value": "pro"}}, {"bob", "dee", "fay"}),
        ({"not": {"attribute": "seats", "op": "exists"}}, {"cyd", "dee"}),
        ({"attribute": "seats", "op": "lte", "value": 3}, {"bob", "gus"}),
        ({"attribute": "plan_name", "op": "in", "value": ["free", "enterprise"]}, {"bob", "fay"}),
        ({"attribute": "created_at", "op": "lt", "value": Y2025_DEC}, {"ada", "bob"}),
        ({"attribute": "created_at", "op": "gte", "value": "2026-01-01"}, {"fay", "gus"}),
    ]
    for audience_filter, expected in cases:
        sent = await broadcast(api, {"filter": audience_filter}, content={"title": repr(audience_filter)})
        assert sent.status == 201, sent
        reached = {
            person for person in PEOPLE
            if any(m["content"]["title"] == repr(audience_filter)
                   for m in (await api.person_messages(person)).body["messages"])
        }
        assert reached == expected, audience_filter
        assert sent.body["queued"] == len(expected)


async def test_attribute_names_with_quotes_backslashes_and_spaces_match_as_written(api: Api) -> None:
    odd = {'say "hi"': "red", "back\\slash": 1, "with space": True, "$.plan": "x", "ünï": "ok"}
    await identify_all(api, {"ada": odd, "bob": {"say": "red", "back": 1, "plan": "x", "with": True}})
    for attribute, value in odd.items():
        sent = await broadcast(api, {"filter": {"attribute": attribute, "op": "eq", "value": value}},
                               content={"title": attribute})
        assert (sent.status, sent.body["queued"]) == (201, 1), (attribute, sent)
    assert sorted(m["content"]["title"] for m in (await api.person_messages("ada")).body["messages"]) == sorted(odd)
    assert (await api.poll("bob", "phone")).message_ids == []


async def test_a_device_cannot_make_a_person_match_a_filter_on_the_backends_attributes(api: Api) -> None:
    # Finding: a device's `plan_name: enterprise` made a free person match an enterprise-only filter.
    await identify_all(api, {"ada": {"plan_name": "free"}, "bob": {"plan_name": "enterprise"}})
    assert (await api.device_identify("ada", {"plan_name": "enterprise", "seats": 50})).status == 200
    assert (await api.device_identify("cyd", {"plan_name": "enterprise"})).status == 200

    enterprise = {"attribute": "plan_name", "op": "eq", "value": "enterprise"}
    plain = await broadcast(api, {"filter": enterprise}, content={"title": "plain"})
    liquid = await broadcast(api, {"filter": {"or": [enterprise, {"attribute": "seats", "op": "exists"}]}},
                             content={"title": "Hi {{ customer.plan_name }}"})
    assert (plain.body["queued"], liquid.body["queued"]) == (1, 1), (plain, liquid)
    assert sorted(m["content"]["title"] for m in (await api.person_messages("bob")).body["messages"]) == [
        "Hi enterprise", "plain"
    ]


async def test_a_filter_reads_the_device_attributes_the_workspace_lists(api: Api) -> None:
    patched = await api.patch_workspace(device_attributes=["theme"])
    assert patched.status == 200, patched
    assert patched.body["device_attributes"] == ["theme"]
    await identify_all(api, {"ada": {"plan_name": "free"}, "bob": {"theme": "light"}})
    for person in ("ada", "bob", "cyd"):
        assert (await api.device_identify(person, {"theme": "dark", "plan_name": "pro"})).status == 200

    dark = {"attribute": "theme", "op": "eq", "value": "dark"}
    plain = await broadcast(api, {"filter": dark}, content={"title": "plain"})
    liquid = await broadcast(api, {"filter": dark}, content={"title": "{{ customer.theme }} {{ customer.plan_name }}"})
    pro = await broadcast(api, {"filter": {"attribute": "plan_name", "op": "eq", "value": "pro"}})
    # bob's backend-set `light` wins over his device's `dark`; `plan_name` is not listed.
    assert (plain.body["queued"], liquid.body["queued"], pro.body["queued"]) == (2, 2, 0)
    titles = sorted(m["content"]["title"] for m in (await api.person_messages("ada")).body["messages"])
    assert titles == ["dark free", "plain"]
    assert sorted(m["content"]["title"] for m in (await api.person_messages("cyd")).body["messages"]) == [
        "dark ", "plain"
    ]


@pytest.mark.parametrize(
    ("audience_filter", "where"),
    [
        pytest.param("plan_name = 'pro'", "$.audience.filter", id="a-string"),
        pytest.param(None, "$.audience.filter", id="null"),
        pytest.param([{"attribute": "a", "op": "exists"}], "$.audience.filter", id="a-list"),
        pytest.param({}, "$.audience.filter", id="empty-object"),
        pytest.param({"attribute": "plan_name", "op": "like", "value": "p%"}, "$.audience.filter.op", id="unknown-op"),
        pytest.param({"attribute": "plan_name", "op": ["eq"], "value": "pro"}, "$.audience.filter.op",
                     id="op-a-list"),
        pytest.param({"attribute": "plan_name", "op": "eq"}, "$.audience.filter", id="no-value"),
        pytest.param({"attribute": "", "op": "exists"}, "$.audience.filter", id="empty-attribute"),
        pytest.param({"attribute": "a" * 65, "op": "exists"}, "$.audience.filter", id="attribute-65-chars"),
        pytest.param({"attribute": "plan_name", "op": "eq", "value": {"$gt": ""}}, "$.audience.filter.value",
                     id="value-an-object"),
        pytest.param({"attribute": "plan_name", "op": "in", "value": []}, "$.audience.filter.value",
                     id="in-empty"),
        pytest.param({"attribute": "created_at", "op": "gt", "value": "last tuesday"}, "$.audience.filter.value",
                     id="time-not-a-time"),
        pytest.param({"and": []}, "$.audience.filter", id="and-empty"),
        pytest.param({"or": {"attribute": "a", "op": "exists"}}, "$.audience.filter", id="or-not-a-list"),
        pytest.param({"not": [{"attribute": "a", "op": "exists"}]}, "$.audience.filter.not", id="not-a-list"),
        pytest.param({"and": [{"attribute": "a", "op": "exists"}, 7]}, "$.audience.filter.and[1]",
                     id="and-with-a-number"),
        pytest.param({"attribute": "a", "op": "exists", "hint": 1}, "$.audience.filter", id="unknown-field"),
        pytest.param({"or": [{"attribute": "a", "op": "eq", "value": i} for i in range(120)]},
                     "$.audience.filter", id="too-many-conditions"),
    ],
)
async def test_a_bad_filter_is_422_invalid_filter_and_queues_nothing(
    api: Api, pool: asyncpg.Pool, audience_filter: Any, where: str
) -> None:
    await identify_all(api, {"ada": PEOPLE["ada"]})
    refused = await broadcast(api, {"filter": audience_filter})
    assert (refused.status, refused.error_code) == (422, "invalid_filter"), refused
    assert where in refused.body["error"]["message"], refused
    assert await pool.fetchval("SELECT count(*) FROM broadcasts") == 0
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_filter_beside_another_audience_is_refused(api: Api, pool: asyncpg.Pool) -> None:
    for audience in ({"filter": {"attribute": "a", "op": "exists"}, "all": True},
                     {"filter": {"attribute": "a", "op": "exists"}, "ids": ["ada"]}):
        refused = await broadcast(api, audience)
        assert (refused.status, refused.error_code) == (422, "invalid_fields"), refused
        assert "exactly one of" in refused.body["error"]["message"]
    assert await pool.fetchval("SELECT count(*) FROM broadcasts") == 0


# Resend


async def test_resend_gives_every_person_of_the_first_audience_a_new_entry_deliverable_once(
    api: Api, clock: FixedClock
) -> None:
    await identify_all(api, PEOPLE)
    sent = await broadcast(api, {"filter": FILTER})
    first: dict[str, str] = {}
    for person in MATCHING:
        device, message_id = await deliver_once(api, person)
        assert (await api.show(person, device, message_id)).body["accepted"] == 1
        first[person] = message_id
    assert (await read(api, sent.body["id"]))["counts"] == counts(shown=3)

    # Since the send, bob came to match and ada no longer does: the resend goes to who got it first.
    await api.identify("bob", plan_name="pro")
    await api.identify("ada", seats=2)
    clock.advance(days=1)
    again = await resend(api, sent.body["id"])
    assert again.status == 200, again
    assert again.body["id"] == sent.body["id"]
    assert again.body["queued"] == len(MATCHING)
    assert again.body["sends"] == 2
    assert again.body["last_sent_at"] != again.body["created_at"]
    assert again.body["total"] == 2 * len(MATCHING)
    assert again.body["counts"] == counts(shown=3, queued=3)
    assert_counts_add_up(again.body)

    for person in MATCHING:
        _, message_id = await deliver_once(api, person)
        assert message_id != first[person]
        assert await api.event_types(message_id) == ["queued", "offered"]
        clock.advance(seconds=1)
        # Deliverable once: neither device gets it again, nor the first one back.
        assert await race_two_devices(api, person) in (
            {"phone": [message_id], "laptop": []}, {"phone": [], "laptop": [message_id]},
        )
    for person in set(PEOPLE) - set(MATCHING):
        assert await race_two_devices(api, person) == {"phone": [], "laptop": []}, person
    assert (await read(api, sent.body["id"]))["counts"] == counts(shown=3, offered=3)

    third = await resend(api, sent.body["id"])
    assert (third.body["sends"], third.body["total"], third.body["queued"]) == (3, 9, 3)


async def test_resend_of_a_personalized_broadcast_repeats_each_persons_content(api: Api) -> None:
    await identify_all(api, {"ada": {"first_name": "Ada"}, "bob": {"first_name": "Bob"}})
    sent = await broadcast(api, {"ids": ["ada", "bob"]}, content={"title": "Hi {{ customer.first_name }}"})
    await api.identify("ada", first_name="Augusta")
    again = await resend(api, sent.body["id"])
    assert again.status == 200, again
    for person, name in (("ada", "Ada"), ("bob", "Bob")):
        titles = [m["content"]["title"] for m in (await api.person_messages(person)).body["messages"]]
        assert titles == [f"Hi {name}", f"Hi {name}"]


async def test_resend_is_refused_when_it_could_not_deliver(
    api: Api, other_api: Api, clock: FixedClock, pool: asyncpg.Pool
) -> None:
    fixed = await broadcast(api, {"ids": ["ada"]}, expires_at=(clock.now() + timedelta(hours=1)).isoformat())
    clock.advance(hours=2)
    expired = await resend(api, fixed.body["id"])
    assert (expired.status, expired.error_code) == (409, "broadcast_expired"), expired

    by_ttl = await broadcast(api, {"ids": ["ada"]}, ttl_s=3600)
    assert (await api.patch_workspace(in_app_enabled=False)).status == 200
    disabled = await resend(api, by_ttl.body["id"])
    assert (disabled.status, disabled.error_code) == (409, "in_app_disabled"), disabled
    assert (await api.patch_workspace(in_app_enabled=True)).status == 200

    for path in (f"/v1/broadcasts/{UNKNOWN_UUID}/resend", "/v1/broadcasts/not-a-uuid/resend",
                 f"/v1/broadcasts/{by_ttl.body['id']}x/resend"):
        unknown = await api.request("POST", path)
        assert (unknown.status, unknown.error_code) == (404, "unknown_broadcast"), (path, unknown)
    elsewhere = await other_api.request("POST", f"/v1/broadcasts/{by_ttl.body['id']}/resend")
    assert (elsewhere.status, elsewhere.error_code) == (404, "unknown_broadcast"), elsewhere
    for method in ("GET", "PUT", "DELETE"):
        wrong = await api.request(method, f"/v1/broadcasts/{by_ttl.body['id']}/resend")
        assert (wrong.status, wrong.error_code) == (405, "method_not_allowed"), (method, wrong)
    unauthorized = await api.request("POST", f"/v1/broadcasts/{by_ttl.body['id']}/resend", auth=False)
    assert (unauthorized.status, unauthorized.error_code) == (401, "unauthorized")

    # Nothing above queued anything: one entry per broadcast, the first send's.
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2


# Recall


async def test_recall_takes_back_what_is_not_yet_shown_and_leaves_shown_ones_alone(
    api: Api, clock: FixedClock
) -> None:
    people = ["ada", "bob", "cyd", "dee"]
    sent = await broadcast(api, {"ids": people})
    ids = {}
    for person in ("ada", "bob", "cyd"):
        ids[person] = (await api.poll(person, "phone")).message_ids[0]
    await api.show("ada", "phone", ids["ada"])
    await api.show("bob", "phone", ids["bob"])
    await api.dismiss("bob", "phone", ids["bob"])
    # cyd's message stays offered to her phone, dee's stays queued.
    view = await read(api, sent.body["id"])
    assert view["counts"] == counts(shown=1, dismissed=1, offered=1, queued=1)

    clock.advance(seconds=5)
    recalled = await recall(api, sent.body["id"])
    assert recalled.status == 200, recalled
    assert recalled.body["recalled"] == 2
    assert recalled.body["status"] == "recalled"
    assert recalled.body["recalled_at"] is not None
    assert recalled.body["counts"] == counts(shown=1, dismissed=1, recalled=2)
    assert_counts_add_up(recalled.body)

    assert (await api.message(ids["ada"])).body["state"] == "shown"
    assert (await api.message(ids["bob"])).body["state"] == "dismissed"
    assert await api.event_types(ids["cyd"]) == ["queued", "offered", "recalled"]
    for person in ("cyd", "dee"):
        assert await race_two_devices(api, person) == {"phone": [], "laptop": []}
    # The shown message can still be acted on.
    action = await api.report("ada", "phone", {"message_id": ids["ada"], "type": "action", "action": "shop"})
    assert action.body["accepted"] == 1
    assert (await read(api, sent.body["id"]))["counts"] == counts(shown=1, action=1, dismissed=1, recalled=2)

    refused = await resend(api, sent.body["id"])
    assert (refused.status, refused.error_code) == (409, "broadcast_recalled"), refused
    again = await recall(api, sent.body["id"])
    assert (again.status, again.body["recalled"], again.body["recalled_at"]) == (
        200, 0, recalled.body["recalled_at"])
    assert again.body["total"] == 4


async def test_recall_of_an_unknown_broadcast_is_404(api: Api, other_api: Api) -> None:
    sent = await broadcast(api, {"ids": ["ada"]})
    for path in (f"/v1/broadcasts/{UNKNOWN_UUID}", "/v1/broadcasts/not-a-uuid", "/v1/broadcasts/" + "b" * 300):
        unknown = await api.request("DELETE", path)
        assert (unknown.status, unknown.error_code) == (404, "unknown_broadcast"), (path, unknown)
    elsewhere = await other_api.request("DELETE", f"/v1/broadcasts/{sent.body['id']}")
    assert (elsewhere.status, elsewhere.error_code) == (404, "unknown_broadcast")
    assert (await api.poll("ada", "phone")).message_ids != []


async def test_a_recall_racing_resends_never_leaves_an_entry_queued(api: Api) -> None:
    """Whatever the interleaving, once recalled no entry of the broadcast waits for a device."""
    people = [f"p{i}" for i in range(20)]
    for round_ in range(8):
        sent = await broadcast(api, {"ids": people}, content={"title": f"round {round_}"})
        replies = await asyncio.gather(
            resend(api, sent.body["id"]), resend(api, sent.body["id"]), recall(api, sent.body["id"]),
            resend(api, sent.body["id"]),
        )
        assert all(r.status in (200, 409) for r in replies), replies
        assert replies[2].status == 200
        view = await read(api, sent.body["id"])
        resent = sum(1 for r in replies if r.status == 200 and "recalled" not in r.body)
        assert view["total"] == len(people) * (1 + resent), (view, replies)
        assert view["counts"] == counts(recalled=view["total"]), view


# Counts


async def test_counts_follow_every_step_and_add_up(api: Api, clock: FixedClock) -> None:
    people = ["ada", "bob", "cyd", "dee", "eve"]
    sent = await broadcast(api, {"ids": people}, ttl_s=3600)
    assert sent.body["counts"] == counts(queued=5)
    assert sent.body["audience"] == {"ids": 5}

    ids = {p: (await api.poll(p, "phone")).message_ids[0] for p in ("ada", "bob", "cyd", "dee")}
    assert (await read(api, sent.body["id"]))["counts"] == counts(offered=4, queued=1)

    await api.show("ada", "phone", ids["ada"])
    await api.report("ada", "phone", {"message_id": ids["ada"], "type": "action", "action": "shop"},
                     {"message_id": ids["ada"], "type": "action", "action": "later"})
    await api.show("bob", "phone", ids["bob"])
    await api.dismiss("bob", "phone", ids["bob"])
    await api.dismiss("cyd", "phone", ids["cyd"])
    assert (await read(api, sent.body["id"]))["counts"] == counts(
        shown=1, action=1, dismissed=2, offered=1, queued=1)

    # Past expires_at, what was queued or offered reads as expired before any sweep ran.
    clock.advance(seconds=3601)
    assert (await read(api, sent.body["id"]))["counts"] == counts(shown=1, action=1, dismissed=2, expired=2)
    await api.poll("eve", "phone")  # the poll records eve's as expired: the counts stay the same
    assert (await read(api, sent.body["id"]))["counts"] == counts(shown=1, action=1, dismissed=2, expired=2)
    recalled = await recall(api, sent.body["id"])
    assert recalled.body["recalled"] == 0
    assert recalled.body["counts"] == counts(shown=1, action=1, dismissed=2, expired=2)


async def test_get_broadcast_bad_ids_and_other_workspaces_are_404(api: Api, other_api: Api) -> None:
    sent = await broadcast(api, {"all": True})
    assert sent.status == 201 and sent.body["total"] == 0, sent
    assert sent.body["counts"] == counts()
    assert (await read(api, sent.body["id"]))["audience"] == {"all": True}
    elsewhere = await other_api.request("GET", f"/v1/broadcasts/{sent.body['id']}")
    assert (elsewhere.status, elsewhere.error_code) == (404, "unknown_broadcast")


# Liquid


async def test_each_persons_message_is_rendered_with_their_attributes_and_the_data(api: Api) -> None:
    await identify_all(api, {
        "ada": {"first_name": "Ada", "plan_name": "pro", "email": "ada@example.com"},
        "bob": {"plan_name": "pro"},
        "cyd": {"first_name": "Cyd", "plan_name": "free"},
    })
    content = {
        "title": "Hi {{ customer.first_name | default: 'there' }}",
        "body": "{{ data.offer }} for {{ customer.id }} ({{ customer.email | default: 'no email' }})",
        "actions": [{"name": "shop", "label": "Shop {{ data.offer }}",
                     "url": "https://example.com/shop?u={{ customer.id }}"}],
    }
    audience = {"filter": {"attribute": "plan_name", "op": "eq", "value": "pro"}}
    sent = await broadcast(api, audience, content=content, data={"offer": "20% off"})
    assert sent.status == 201, sent
    assert sent.body["queued"] == 2

    expected = {
        "ada": ("Hi Ada", "20% off for ada (ada@example.com)"),
        "bob": ("Hi there", "20% off for bob (no email)"),
    }
    for person, (title, body) in expected.items():
        (message,) = (await api.poll(person, "phone")).body["messages"]
        assert (message["content"]["title"], message["content"]["body"]) == (title, body)
        assert message["content"]["actions"] == [
            {"name": "shop", "label": "Shop 20% off", "url": f"https://example.com/shop?u={person}"}]
    assert (await api.poll("cyd", "phone")).message_ids == []


async def test_a_held_poll_is_answered_by_a_personalized_broadcast(api: Api) -> None:
    await identify_all(api, {"ada": {"first_name": "Ada", "email": "ada@example.com"}})
    held = api.hold("ada", "phone", wait=25)
    waiters = api.client.app[WAITERS]
    await wait_until(lambda: len(waiters) == 1, what="the poll parked")
    sent = await broadcast(api, {"emails": ["ADA@example.com", "new@example.com"]},
                           content={"title": "Hi {{ customer.first_name | default: customer.email }}"})
    assert sent.status == 201 and sent.body["queued"] == 2, sent
    # Answered on the wake-up, long before the 25 s wait runs out (which would answer empty).
    answer = await asyncio.wait_for(held, 15)
    assert [m["content"]["title"] for m in answer.body["messages"]] == ["Hi Ada"]
    newcomer = await api.poll("new@example.com", "laptop")
    assert [m["content"]["title"] for m in newcomer.body["messages"]] == ["Hi new@example.com"]


async def test_strict_mode_needs_every_variable_of_every_person(api: Api, pool: asyncpg.Pool) -> None:
    await identify_all(api, {"ada": {"first_name": "Ada"}, "bob": {"plan_name": "pro"}})
    content = {"title": "Hi {{ customer.first_name }}", "body": "{{ data.offer | default: 'Hello' }}"}

    lenient = await broadcast(api, {"ids": ["ada", "bob"]}, content=content)
    assert lenient.status == 201, lenient
    assert [m["content"]["title"] for m in (await api.person_messages("bob")).body["messages"]] == ["Hi "]

    refused = await broadcast(api, {"ids": ["ada", "bob"]}, content=content, strict=True)
    assert (refused.status, refused.error_code) == (422, "invalid_template"), refused
    message = refused.body["error"]["message"]
    assert "content.title" in message and "first_name" in message and "'bob'" in message, message
    assert await pool.fetchval("SELECT count(*) FROM broadcasts") == 1
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2

    fine = await broadcast(api, {"ids": ["ada"]}, content=content, strict=True)
    assert fine.status == 201, fine


@pytest.mark.parametrize(
    ("content", "where"),
    [
        pytest.param({"title": "Hi {{ customer.first_name "}, "content.title (line 1)", id="unclosed-output"),
        pytest.param({"title": "Hi", "body": "line one\n{% if customer.vip %}VIP"}, "content.body",
                     id="unclosed-if"),
        pytest.param({"title": "{% nosuchtag %}"}, "content.title", id="unknown-tag"),
        pytest.param({"title": "Hi", "actions": [{"name": "a", "label": "{{ x | nosuchfilter }}"}]},
                     "content.actions[0].label", id="unknown-filter"),
    ],
)
async def test_a_broken_template_is_422_and_queues_nothing(
    api: Api, pool: asyncpg.Pool, content: dict[str, Any], where: str
) -> None:
    await identify_all(api, {"ada": {"first_name": "Ada"}})
    refused = await broadcast(api, {"all": True}, content=content)
    assert (refused.status, refused.error_code) == (422, "invalid_template"), refused
    assert where in refused.body["error"]["message"], refused
    assert await pool.fetchval("SELECT count(*) FROM broadcasts") == 0
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert (await api.poll("ada", "phone")).message_ids == []


async def test_data_must_be_an_object(api: Api, pool: asyncpg.Pool) -> None:
    for data in ([1], "offer", 3):
        refused = await broadcast(api, {"all": True}, content={"title": "{{ data }}"}, data=data)
        assert (refused.status, refused.error_code) == (422, "invalid_fields"), refused
    refused = await broadcast(api, {"all": True}, strict="yes")
    assert (refused.status, refused.error_code) == (422, "invalid_fields"), refused
    assert await pool.fetchval("SELECT count(*) FROM broadcasts") == 0


async def test_a_filter_broadcast_is_idempotent_with_a_key(api: Api) -> None:
    await identify_all(api, PEOPLE)
    headers = {"Idempotency-Key": "spring-2026"}
    body = {"audience": {"filter": FILTER}, "content": {"title": "Hi {{ customer.plan_name }}"}}
    first = await api.request("POST", "/v1/broadcasts", json=body, headers=headers)
    again = await api.request("POST", "/v1/broadcasts", json=body, headers=headers)
    assert (first.status, again.status) == (201, 200), (first, again)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.body["id"] == first.body["id"] and again.body["total"] == len(MATCHING)
    other = await api.request("POST", "/v1/broadcasts", json={**body, "data": {"x": 1}}, headers=headers)
    assert (other.status, other.error_code) == (422, "idempotency_key_reused")
