"""Event triggers over HTTP: defining them, events from the backend and from devices, filters,
re-entry (every time, once per person even under concurrent events), identity proof, held polls,
and bad inputs beside the good ones."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from typing import Any

import asyncpg
import pytest

import storage
from gateway import Config, create_app
from gateway.core.clock import FixedClock
from gateway.http.keys import CONFIG, POOL, WAITERS
from tests.helpers import Api, Reply, metric_value, wait_until

UPGRADED = {
    "title": "Welcome to {{ event.data.plan }}, {{ customer.first_name | default: 'there' }}",
    "body": "You upgraded to {{ event.data.plan | upcase }}.",
}


@pytest.fixture
def config(config: Config) -> Config:
    # Every connection opened at start: "all idle" then means "no claim is running" (held polls).
    return dataclasses.replace(config, max_wait_s=30, pool_min=4, pool_max=4)


async def create_trigger(api: Api, event: str = "upgraded", content: dict[str, Any] | None = None,
                         **fields: Any) -> Reply:
    message = fields.pop("message", {"content": content or UPGRADED})
    return await api.request("POST", "/v1/triggers", json={"event": event, "message": message, **fields})


async def trigger_id(api: Api, event: str = "upgraded", content: dict[str, Any] | None = None, **fields: Any) -> str:
    created = await create_trigger(api, event, content, **fields)
    assert created.status == 201, created
    return str(created.body["id"])


async def event(api: Api, person: str, name: str = "upgraded", data: Any = None, **fields: Any) -> Reply:
    body = {"name": name, **({"data": data} if data is not None else {}), **fields}
    return await api.request("POST", f"/v1/people/{person}/events", json=body)


async def track(api: Api, user: str, name: str = "upgraded", data: Any = None, **fields: Any) -> Reply:
    body = {"site_id": api.site_id, "user": user, "device_id": "web-1", "name": name, **fields}
    if data is not None:
        body["data"] = data
    return await api.request("POST", "/v1/track", json=body, auth=False)


async def queued(api: Api, person: str) -> list[dict[str, Any]]:
    """The person's messages (none when the person is unknown)."""
    reply = await api.person_messages(person)
    if reply.status == 404:
        return []
    assert reply.status == 200, reply
    return list(reply.body["messages"])


async def person_events(pool: asyncpg.Pool) -> list[tuple[str, str, Any, str]]:
    rows = await pool.fetch(
        "SELECT p.external_id, e.name, e.data, e.source FROM person_events e JOIN people p ON p.id = e.person_id"
        " ORDER BY e.id"
    )
    return [(r["external_id"], r["name"], r["data"], r["source"]) for r in rows]


# Defining triggers


async def test_a_trigger_is_created_listed_and_disabled(api: Api, clock: FixedClock) -> None:
    created = await create_trigger(
        api, filter={"attribute": "plan_name", "op": "eq", "value": "free"}, reentry="once",
        message={"content": {"title": "Hi {{ customer.first_name }}"}, "priority": 3, "ttl_s": 3600,
                 "campaign": "upsell", "properties": {"screen": "billing"}},
    )
    assert created.status == 201, created
    trigger = created.body
    uuid.UUID(trigger["id"])
    assert trigger["event"] == "upgraded"
    assert trigger["filter"] == {"attribute": "plan_name", "op": "eq", "value": "free"}
    assert trigger["reentry"] == "once"
    assert trigger["enabled"] is True
    assert trigger["created_at"] == "2026-11-28T12:00:00Z"
    assert trigger["message"]["content"]["title"] == "Hi {{ customer.first_name }}"
    assert trigger["message"]["content"]["layout"] == "modal"
    assert {k: trigger["message"][k] for k in ("priority", "ttl_s", "campaign", "properties", "persistent")} == {
        "priority": 3, "ttl_s": 3600, "campaign": "upsell", "properties": {"screen": "billing"}, "persistent": False,
    }
    clock.advance(seconds=1)
    second = await trigger_id(api, "signed_up")

    listed = await api.request("GET", "/v1/triggers")
    assert listed.status == 200
    assert [t["id"] for t in listed.body["triggers"]] == [trigger["id"], second]
    assert listed.body["triggers"][0] == trigger

    deleted = await api.request("DELETE", f"/v1/triggers/{trigger['id']}")
    assert deleted.status == 200, deleted
    assert deleted.body == {**trigger, "enabled": False}
    again = await api.request("DELETE", f"/v1/triggers/{trigger['id']}")
    assert again.status == 200 and again.body["enabled"] is False
    listed = await api.request("GET", "/v1/triggers")
    assert [t["enabled"] for t in listed.body["triggers"]] == [False, True]


async def test_the_documented_example_works(api: Api) -> None:
    """docs/api.md, `POST /v1/triggers` and `POST /v1/people/{id}/events`."""
    created = await api.request("POST", "/v1/triggers", json={
        "event": "upgraded",
        "filter": {"attribute": "plan_name", "op": "ne", "value": "enterprise"},
        "message": {"content": {"title": "Welcome to {{ event.data.plan | capitalize }}",
                                "body": 'Thanks, {{ customer.first_name | default: "there" }}!'},
                    "properties": {}, "priority": 0, "persistent": False, "ttl_s": 604800,
                    "campaign": "upgrade"},
        "reentry": "once",
    })
    assert created.status == 201, created
    assert created.body["message"]["content"]["image_url"] is None
    assert created.body["message"]["strict"] is False and created.body["message"]["data"] == {}
    await api.identify("user-42", first_name="Ada", plan_name="pro")

    reply = await api.request("POST", "/v1/people/user-42/events", json={"name": "upgraded",
                                                                       "data": {"plan": "pro", "seats": 5}})

    assert reply.status == 200 and reply.body["failed"] == []
    message = (await api.message(reply.body["queued"][0])).body
    assert (message["content"]["title"], message["content"]["body"]) == ("Welcome to Pro", "Thanks, Ada!")


async def test_a_disabled_trigger_fires_no_more(api: Api) -> None:
    tid = await trigger_id(api)
    assert len((await event(api, "ada", data={"plan": "pro"})).body["queued"]) == 1
    assert (await api.request("DELETE", f"/v1/triggers/{tid}")).status == 200

    reply = await event(api, "ada", data={"plan": "pro"})
    assert reply.status == 200
    assert reply.body["queued"] == []
    assert len(await queued(api, "ada")) == 1


async def test_triggers_of_another_workspace_are_invisible(api: Api, other_api: Api) -> None:
    tid = await trigger_id(api)

    assert (await other_api.request("GET", "/v1/triggers")).body == {"triggers": []}
    missing = await other_api.request("DELETE", f"/v1/triggers/{tid}")
    assert missing.status == 404 and missing.error_code == "unknown_trigger"
    assert (await event(other_api, "ada", data={"plan": "pro"})).body["queued"] == []
    assert (await api.request("GET", "/v1/triggers")).body["triggers"][0]["enabled"] is True


# Events from the backend


async def test_an_event_from_the_backend_queues_the_message_rendered_with_its_data(
    api: Api, pool: asyncpg.Pool
) -> None:
    tid = await trigger_id(api)
    await api.identify("ada", first_name="Ada", email="ada@example.com")

    reply = await event(api, "ada", data={"plan": "pro"})

    assert reply.status == 200, reply
    assert reply.body["accepted"] is True and reply.body["failed"] == []
    [message_id] = reply.body["queued"]
    message = (await api.message(message_id)).body
    assert message["content"]["title"] == "Welcome to pro, Ada"
    assert message["content"]["body"] == "You upgraded to PRO."
    assert message["to"] == {"id": "ada", "email": "ada@example.com"}
    assert message["state"] == "queued"
    assert await api.event_types(message_id) == ["queued"]
    assert await pool.fetchval("SELECT trigger_id FROM messages WHERE id = $1", uuid.UUID(message_id)) == uuid.UUID(tid)
    assert await person_events(pool) == [("ada", "upgraded", {"plan": "pro"}, "server")]

    polled = await api.poll("ada", "phone")
    assert polled.message_ids == [message_id]
    assert polled.body["messages"][0]["content"]["title"] == "Welcome to pro, Ada"


async def test_an_event_for_a_new_person_creates_them_and_defaults_fill_in(api: Api, pool: asyncpg.Pool) -> None:
    await trigger_id(api)

    reply = await event(api, "newcomer", data={"plan": "team"})

    [message] = await queued(api, "newcomer")
    assert message["id"] == reply.body["queued"][0]
    assert message["content"]["title"] == "Welcome to team, there"
    assert await person_events(pool) == [("newcomer", "upgraded", {"plan": "team"}, "server")]


async def test_an_event_without_a_matching_trigger_is_recorded_and_queues_nothing(
    api: Api, pool: asyncpg.Pool
) -> None:
    await trigger_id(api, "upgraded")

    reply = await event(api, "ada", "downgraded")

    assert reply.status == 200
    assert reply.body == {"accepted": True, "queued": [], "failed": []}
    assert await queued(api, "ada") == []
    assert await person_events(pool) == [("ada", "downgraded", {}, "server")]


async def test_every_matching_trigger_queues_its_own_message(api: Api) -> None:
    await trigger_id(api, "upgraded", {"title": "First"})
    await trigger_id(api, "upgraded", {"title": "Second for {{ event.name }}"})

    reply = await event(api, "ada")

    assert len(reply.body["queued"]) == 2
    titles = sorted(m["content"]["title"] for m in await queued(api, "ada"))
    assert titles == ["First", "Second for upgraded"]


async def test_a_parked_device_gets_a_triggered_message_at_once(api: Api) -> None:
    await trigger_id(api)
    app = api.client.app
    held = api.hold("ada", "phone", wait=5)
    size = app[CONFIG].pool_max
    await wait_until(lambda: len(app[WAITERS]) == 1 and app[POOL].get_idle_size() == size,
                     what="one parked poll whose claim has finished")
    assert not held.done()

    sent = await event(api, "ada", data={"plan": "pro"})

    # A poll that timed out would answer with its earlier, empty claim: this one was woken.
    reply = await asyncio.wait_for(held, 10)
    assert reply.message_ids == sent.body["queued"]
    assert reply.body["messages"][0]["content"]["title"] == "Welcome to pro, there"
    assert metric_value(await api.metrics_text(), "mailslot_wakeups_total", reason="message") == 1


# Filters


async def test_a_filter_limits_a_trigger_to_matching_people(api: Api) -> None:
    await trigger_id(
        api, content={"title": "Pro perks"},
        filter={"and": [{"attribute": "plan_name", "op": "eq", "value": "pro"},
                        {"attribute": "created_at", "op": "gte", "value": "2026-01-01T00:00:00Z"}]},
    )
    await api.identify("pro-new", plan_name="pro", created_at=1790000000)
    await api.identify("pro-old", plan_name="pro", created_at=1700000000)
    await api.identify("free-new", plan_name="free", created_at=1790000000)

    for person in ("pro-new", "pro-old", "free-new", "stranger"):
        reply = await event(api, person)
        assert reply.status == 200, reply

    assert [m["content"]["title"] for m in await queued(api, "pro-new")] == ["Pro perks"]
    for person in ("pro-old", "free-new", "stranger"):
        assert await queued(api, person) == [], person


async def test_a_filter_sees_attributes_as_they_are_when_the_event_arrives(api: Api) -> None:
    await trigger_id(api, content={"title": "Hi"}, filter={"attribute": "vip", "op": "eq", "value": True})
    await api.identify("ada", vip=False)
    assert (await event(api, "ada")).body["queued"] == []

    await api.identify("ada", vip=True)
    assert len((await event(api, "ada")).body["queued"]) == 1


# Re-entry


async def test_every_time_gives_one_message_per_event(api: Api) -> None:
    await trigger_id(api, reentry="every_time")

    replies = [await event(api, "ada", data={"plan": f"plan-{i}"}) for i in range(4)]

    ids = [r.body["queued"][0] for r in replies]
    assert len(set(ids)) == 4
    assert sorted(m["content"]["title"] for m in await queued(api, "ada")) == [
        f"Welcome to plan-{i}, there" for i in range(4)
    ]


async def test_once_gives_one_message_per_person_ever(api: Api) -> None:
    await trigger_id(api, reentry="once")

    first = await event(api, "ada", data={"plan": "pro"})
    second = await event(api, "ada", data={"plan": "team"})
    other = await event(api, "bob", data={"plan": "team"})

    assert len(first.body["queued"]) == 1
    assert second.body == {"accepted": True, "queued": [], "failed": []}
    assert len(other.body["queued"]) == 1
    assert [m["content"]["title"] for m in await queued(api, "ada")] == ["Welcome to pro, there"]


async def test_once_holds_under_concurrent_events(api: Api, pool: asyncpg.Pool) -> None:
    tid = await trigger_id(api, reentry="once")
    await api.identify("ada", first_name="Ada")

    replies = await asyncio.gather(*(event(api, "ada", data={"plan": f"p{i}"}) for i in range(20)))

    assert all(r.status == 200 for r in replies), replies
    winners = [r.body["queued"] for r in replies if r.body["queued"]]
    assert len(winners) == 1 and len(winners[0]) == 1
    assert [m["id"] for m in await queued(api, "ada")] == winners[0]
    assert await pool.fetchval("SELECT count(*) FROM trigger_deliveries WHERE trigger_id = $1", uuid.UUID(tid)) == 1
    assert await pool.fetchval("SELECT count(*) FROM person_events") == 20


async def test_once_holds_under_concurrent_events_for_a_new_person_through_two_apps(
    api: Api, aiohttp_client, config: Config, clock: FixedClock  # type: ignore[no-untyped-def]
) -> None:
    await trigger_id(api, reentry="once")
    second = Api(await aiohttp_client(create_app(config, clock=clock, rng=random.Random(3))), api.credentials)

    replies = await asyncio.gather(*(
        event(app, "newcomer", data={"plan": f"p{i}"}) if i % 2 else track(app, "newcomer", data={"plan": f"p{i}"})
        for i, app in enumerate([api, second] * 10)
    ))

    assert all(r.status == 200 for r in replies), replies
    assert sum(len(r.body["queued"]) for r in replies) == 1
    assert len(await queued(api, "newcomer")) == 1


async def test_a_disabled_workspace_queues_nothing_and_a_once_trigger_waits(api: Api, pool: asyncpg.Pool) -> None:
    await trigger_id(api, reentry="once")
    assert (await api.patch_workspace(in_app_enabled=False)).status == 200

    reply = await event(api, "ada", data={"plan": "pro"})
    assert reply.status == 200
    assert reply.body["queued"] == []
    assert await pool.fetchval("SELECT count(*) FROM trigger_deliveries") == 0

    assert (await api.patch_workspace(in_app_enabled=True)).status == 200
    assert len((await event(api, "ada", data={"plan": "pro"})).body["queued"]) == 1


# Stored templates by id


async def test_a_trigger_can_send_a_stored_template_with_its_data(api: Api, pool: asyncpg.Pool) -> None:
    template = await storage.create_template(
        pool, api.workspace.id, "upgrade",
        {"title": "{{ data.greeting }}, {{ customer.first_name }}", "body": "Now on {{ event.data.plan }}",
         "image_url": None, "actions": [], "layout": "modal", "element_id": None},
        {"screen": "home", "tone": "warm"},
    )
    template_id = template.id
    created = await create_trigger(
        api, message={"template_id": str(template_id), "data": {"greeting": "Hello"}, "properties": {"tone": "dry"}}
    )
    assert created.status == 201, created
    assert created.body["message"]["template_id"] == str(template_id)
    await api.identify("ada", first_name="Ada")

    [message_id] = (await event(api, "ada", data={"plan": "pro"})).body["queued"]

    message = (await api.message(message_id)).body
    assert (message["content"]["title"], message["content"]["body"]) == ("Hello, Ada", "Now on pro")
    assert message["properties"] == {"screen": "home", "tone": "dry"}
    assert await pool.fetchval("SELECT template_id FROM messages WHERE id = $1", uuid.UUID(message_id)) == template_id


async def test_a_template_of_another_workspace_cannot_be_used(api: Api, other_api: Api, pool: asyncpg.Pool) -> None:
    theirs = await storage.create_template(pool, other_api.workspace.id, "t", {"title": "x"}, {})
    for template_id in (theirs.id, uuid.uuid4()):
        reply = await create_trigger(api, message={"template_id": str(template_id)})
        assert reply.status == 422 and reply.error_code == "unknown_template", reply
    assert (await api.request("GET", "/v1/triggers")).body["triggers"] == []


# Messages that cannot render for this person and event


async def test_a_strict_trigger_missing_a_variable_is_skipped_and_reported(api: Api) -> None:
    tid = await trigger_id(api, message={"content": {"title": "Plan {{ event.data.plan }}"}, "strict": True})
    await trigger_id(api, "upgraded", {"title": "Plain"})

    reply = await event(api, "ada", data={"seats": 3})

    assert reply.status == 200
    assert len(reply.body["queued"]) == 1
    [failed] = reply.body["failed"]
    assert failed["trigger_id"] == tid and failed["code"] == "invalid_template"
    assert "content.title (line 1)" in failed["message"]
    assert [m["content"]["title"] for m in await queued(api, "ada")] == ["Plain"]

    ok = await event(api, "ada", data={"plan": "pro"})
    assert len(ok.body["queued"]) == 2 and ok.body["failed"] == []


async def test_rendered_content_that_breaks_the_limits_is_never_queued(api: Api) -> None:
    await trigger_id(api, content={"title": "{{ event.data.title }}", "image_url": "/img/{{ event.data.img }}",
                                   "actions": [{"name": "go", "label": "Go",
                                                "url": "https://example.com/{{ event.data.path }}"}]})

    bad = await event(api, "ada", data={"title": "x" * 1001, "img": "a.png", "path": "p"})
    assert bad.body["queued"] == []
    [failed] = bad.body["failed"]
    assert failed["code"] == "invalid_template"
    assert "content.title" in failed["message"]

    good = await event(api, "ada", data={"title": "Look", "img": "a.png", "path": "go?x=1"})
    [message_id] = good.body["queued"]
    content = (await api.message(message_id)).body["content"]
    assert (content["title"], content["image_url"]) == ("Look", "/img/a.png")
    assert content["actions"] == [{"name": "go", "label": "Go", "url": "https://example.com/go?x=1"}]


# Events from devices


async def test_a_tracked_event_from_a_device_queues_the_message(api: Api, pool: asyncpg.Pool) -> None:
    await trigger_id(api)
    await api.identify("ada", first_name="Ada")

    reply = await track(api, "ada", data={"plan": "pro"})

    assert reply.status == 200, reply
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    [message_id] = reply.body["queued"]
    assert reply.body == {"accepted": True, "queued": [message_id]}
    assert (await api.poll("ada", "web-1")).body["messages"][0]["content"]["title"] == "Welcome to pro, Ada"
    assert await person_events(pool) == [("ada", "upgraded", {"plan": "pro"}, "device")]


async def test_a_device_may_track_as_the_email_it_identified_with(api: Api) -> None:
    await trigger_id(api)
    await api.identify("ada", first_name="Ada", email="ada@example.com")

    reply = await track(api, "ADA@example.com", data={"plan": "pro"})

    assert len(reply.body["queued"]) == 1
    assert [m["id"] for m in await queued(api, "ada")] == reply.body["queued"]


async def test_a_device_tracking_as_an_email_reaches_that_persons_queue_not_a_new_one(
    api: Api, pool: asyncpg.Pool
) -> None:
    await trigger_id(api)
    await api.identify("ada", first_name="Ada", email="ada@example.com")
    assert len((await track(api, "ada@example.com")).body["queued"]) == 1

    # Nobody has this email yet: the person is known by the email, never by an id equal to it.
    reply = await track(api, "Eve@Example.com")
    assert len(reply.body["queued"]) == 1
    assert await pool.fetchval("SELECT count(*) FROM people WHERE external_id ILIKE '%@%'") == 0
    eve = await api.person_messages("eve@example.com", by="email")
    assert eve.body["person"]["id"] is None
    assert [m["id"] for m in eve.body["messages"]] == reply.body["queued"]


async def test_a_trigger_filter_ignores_a_devices_attributes_unless_listed(api: Api) -> None:
    await trigger_id(api, filter={"attribute": "plan_name", "op": "eq", "value": "enterprise"})
    await api.identify("ada", plan_name="free")
    assert (await api.device_identify("ada", {"plan_name": "enterprise"})).status == 200
    assert (await track(api, "ada")).body["queued"] == []
    assert (await api.device_identify("bob", {"plan_name": "enterprise"})).status == 200
    assert (await track(api, "bob")).body["queued"] == []

    assert (await api.patch_workspace(device_attributes=["plan_name"])).status == 200
    assert (await track(api, "ada")).body["queued"] == []
    assert len((await track(api, "bob")).body["queued"]) == 1


async def test_track_answers_cors_preflights(api: Api) -> None:
    reply = await api.request("OPTIONS", "/v1/track", auth=False, headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]


async def test_track_honours_required_identity_proof(api: Api, pool: asyncpg.Pool) -> None:
    await trigger_id(api)
    assert (await api.patch_workspace(identity_mode="required")).status == 200

    missing = await track(api, "ada", data={"plan": "pro"})
    wrong = await track(api, "ada", data={"plan": "pro"}, user_hash=api.hash_for("bob"))

    assert missing.status == 403 and missing.error_code == "identity_proof_required"
    assert wrong.status == 403 and wrong.error_code == "identity_proof_failed"
    assert await queued(api, "ada") == []
    assert await person_events(pool) == []

    proven = await track(api, "ada", data={"plan": "pro"}, user_hash=api.hash_for("ada"))
    assert proven.status == 200 and len(proven.body["queued"]) == 1


async def test_track_checks_a_proof_given_under_optional_mode(api: Api) -> None:
    await trigger_id(api)
    assert (await api.patch_workspace(identity_mode="optional")).status == 200

    assert (await track(api, "ada", user_hash="00" * 32)).status == 403
    assert (await track(api, "ada")).status == 200
    assert len(await queued(api, "ada")) == 1


# Bad inputs


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({"message": {"content": {"title": "x"}}}, 422, "invalid_fields", id="no-event"),
        pytest.param({"event": "", "message": {"content": {"title": "x"}}}, 422, "invalid_fields", id="empty-event"),
        pytest.param({"event": "e" * 65, "message": {"content": {"title": "x"}}}, 422, "invalid_fields",
                     id="long-event"),
        pytest.param({"event": "e"}, 422, "invalid_fields", id="no-message"),
        pytest.param({"event": "e", "message": {}}, 422, "invalid_fields", id="empty-message"),
        pytest.param({"event": "e", "message": {"content": {"title": "x"}, "template_id": str(uuid.uuid4())}},
                     422, "invalid_fields", id="content-and-template"),
        pytest.param({"event": "e", "message": {"content": {"layout": "modal"}}}, 422, "invalid_fields",
                     id="no-title-or-body"),
        pytest.param({"event": "e", "message": {"content": {"title": "x", "layout": "inline"}}}, 422,
                     "invalid_fields", id="inline-without-element"),
        pytest.param({"event": "e", "message": {"template_id": "nope"}}, 422, "invalid_fields", id="bad-template-id"),
        pytest.param({"event": "e", "message": {"content": {"title": "x"}, "expires_at": 2000000000}}, 422,
                     "invalid_fields", id="expires-at"),
        pytest.param({"event": "e", "message": {"content": {"title": "x"}, "ttl_s": 0}}, 422, "invalid_fields",
                     id="zero-ttl"),
        pytest.param({"event": "e", "message": {"content": {"title": "x"}}, "reentry": "twice"}, 422,
                     "invalid_fields", id="bad-reentry"),
        pytest.param({"event": "e", "message": {"content": {"title": "x"}}, "extra": 1}, 422, "invalid_fields",
                     id="unknown-field"),
        pytest.param({"event": "e", "message": {"content": {"title": "Hi {{ customer.name "}}}, 422,
                     "invalid_template", id="unclosed-output"),
        pytest.param({"event": "e", "message": {"content": {"title": "x", "body": "{% if x %}open"}}}, 422,
                     "invalid_template", id="unclosed-tag"),
        pytest.param({"event": "e", "message": {"content": {"title": "x"}}, "filter": {"attribute": "a", "op": "??"}},
                     422, "invalid_filter", id="bad-filter-op"),
        pytest.param({"event": "e", "message": {"content": {"title": "x"}}, "filter": {}}, 422, "invalid_filter",
                     id="empty-filter"),
        pytest.param({"event": "e", "message": {"content": {"title": "x"}}, "filter": [1]}, 422, "invalid_fields",
                     id="filter-not-object"),
        pytest.param({"event": "e\u0000", "message": {"content": {"title": "x"}}}, 422, "invalid_fields",
                     id="nul-in-event"),
    ],
)
async def test_bad_triggers_are_refused(api: Api, body: dict[str, Any], status: int, code: str) -> None:
    reply = await api.request("POST", "/v1/triggers", json=body)
    assert (reply.status, reply.error_code) == (status, code), reply
    assert (await api.request("GET", "/v1/triggers")).body["triggers"] == []


async def test_a_broken_template_names_the_field_and_line(api: Api) -> None:
    reply = await create_trigger(api, content={"title": "ok", "body": "line one\n{{ customer.name "})
    assert reply.status == 422
    assert "content.body (line 2)" in reply.body["error"]["message"]


async def test_trigger_endpoints_need_the_api_key_and_sane_ids(api: Api) -> None:
    assert (await api.request("GET", "/v1/triggers", auth=False)).status == 401
    assert (await api.request("POST", "/v1/triggers", auth=False, json={})).status == 401
    assert (await api.request("POST", "/v1/triggers", data=b"{not json")).status == 400
    assert (await api.request("POST", "/v1/triggers", data=b"")).status == 400
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        reply = await api.request("DELETE", f"/v1/triggers/{bad}")
        assert reply.status == 404 and reply.error_code == "unknown_trigger"
    assert (await api.request("PUT", "/v1/triggers")).status == 405


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({}, 422, id="no-name"),
        pytest.param({"name": ""}, 422, id="empty-name"),
        pytest.param({"name": "n" * 65}, 422, id="long-name"),
        pytest.param({"name": 5}, 422, id="name-not-string"),
        pytest.param({"name": "e", "data": [1, 2]}, 422, id="data-not-object"),
        pytest.param({"name": "e", "data": "text"}, 422, id="data-string"),
        pytest.param({"name": "e", "data": {"k": "a\u0000b"}}, 422, id="nul-in-data"),
        pytest.param({"name": "e", "extra": True}, 422, id="unknown-field"),
        pytest.param([{"name": "e"}], 422, id="not-an-object"),
    ],
)
async def test_bad_backend_events_are_refused(api: Api, pool: asyncpg.Pool, body: Any, status: int) -> None:
    await trigger_id(api, "e", {"title": "x"})
    reply = await api.request("POST", "/v1/people/ada/events", json=body)
    assert reply.status == status, reply
    assert await person_events(pool) == []


async def test_backend_event_edges(api: Api, pool: asyncpg.Pool) -> None:
    assert (await api.request("POST", "/v1/people/ada/events", data=b"{")).status == 400
    assert (await api.request("POST", "/v1/people/ada/events", auth=False, json={"name": "e"})).status == 401
    assert (await api.request("POST", "/v1/people/" + "x" * 256 + "/events", json={"name": "e"})).status == 422
    assert (await api.request("POST", "/v1/people/ada%00/events", json={"name": "e"})).status == 422
    too_big = {"name": "e", "data": {"blob": "x" * 70_000}}
    assert (await api.request("POST", "/v1/people/ada/events", json=too_big)).status == 413
    # The largest data that fits is fine, and null data means none.
    fits = {"name": "e", "data": {"blob": "x" * 60_000}}
    assert (await api.request("POST", "/v1/people/ada/events", json=fits)).status == 200
    assert (await api.request("POST", "/v1/people/bob/events", json={"name": "e", "data": None})).status == 200
    assert [(p, d == {}) for p, _, d, _ in await person_events(pool)] == [("ada", False), ("bob", True)]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        pytest.param({"site_id": "site_unknown"}, 401, "unknown_site", id="unknown-site"),
        pytest.param({"user": ""}, 422, "invalid_fields", id="empty-user"),
        pytest.param({"name": ""}, 422, "invalid_fields", id="empty-name"),
        pytest.param({"name": "n" * 65}, 422, "invalid_fields", id="long-name"),
        pytest.param({"data": [1]}, 422, "invalid_fields", id="data-not-object"),
        pytest.param({"device_id": "bad id!"}, 422, "invalid_fields", id="bad-device-id"),
        pytest.param({"user_hash": 7}, 422, "invalid_fields", id="hash-not-string"),
    ],
)
async def test_bad_tracks_are_refused(api: Api, pool: asyncpg.Pool, fields: dict[str, Any], status: int,
                                      code: str) -> None:
    await trigger_id(api)
    body = {"site_id": api.site_id, "user": "ada", "device_id": "web-1", "name": "upgraded", **fields}
    reply = await api.request("POST", "/v1/track", json=body, auth=False)
    assert (reply.status, reply.error_code) == (status, code), reply
    assert await person_events(pool) == []
    assert (await api.request("POST", "/v1/track", data=b"[", auth=False)).status == 400


async def test_once_stays_used_when_identify_merges_an_email_only_person(api: Api, pool: asyncpg.Pool) -> None:
    await trigger_id(api, reentry="once")
    assert (await api.send({"email": "ada@example.com"}, "Hello")).status == 201
    fired = await track(api, "ada@example.com", data={"plan": "pro"})
    assert len(fired.body["queued"]) == 1

    merged = await api.identify("ada", email="ada@example.com")
    again = await event(api, "ada", data={"plan": "team"})

    assert merged.status == 200, merged
    assert again.body["queued"] == [], again
    assert await pool.fetchval("SELECT count(*) FROM person_events") == 2
    assert await pool.fetchval("SELECT count(DISTINCT person_id) FROM person_events") == 1
