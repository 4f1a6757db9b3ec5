"""Stored templates: create, read, list, and send by template id with per-send data."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from gateway.core.clock import FixedClock
from tests.helpers import Api, Reply

WELCOME = {
    "layout": "modal",
    "title": "Welcome, {{ customer.first_name | default: 'friend' }}",
    "body": "Your {{ data.plan }} plan is ready.",
    "actions": [{"name": "start", "label": "Start {{ data.plan }}", "url": "https://example.com/start"}],
}


async def create(api: Api, name: str = "welcome", content: dict[str, Any] | None = None, **fields: Any) -> Reply:
    return await api.request("POST", "/v1/templates", json={"name": name, "content": content or WELCOME, **fields})


async def send_template(api: Api, to: str, template_id: str, **fields: Any) -> Reply:
    return await api.request("POST", "/v1/messages", json={"to": {"id": to}, "template_id": template_id, **fields})


async def test_a_template_is_created_read_and_listed(api: Api, clock: FixedClock) -> None:
    created = await create(api, properties={"screen": "home"})
    assert created.status == 201, created
    body = created.body
    uuid.UUID(body["id"])
    assert body["name"] == "welcome"
    # Stored in the shape every message has, templates as written.
    assert body["content"] == {
        "layout": "modal",
        "title": "Welcome, {{ customer.first_name | default: 'friend' }}",
        "body": "Your {{ data.plan }} plan is ready.",
        "image_url": None,
        "actions": [{"name": "start", "label": "Start {{ data.plan }}", "url": "https://example.com/start"}],
        "element_id": None,
    }
    assert body["properties"] == {"screen": "home"}
    assert datetime.fromisoformat(body["created_at"]) == clock.now()

    read = await api.request("GET", f"/v1/templates/{body['id']}")
    assert (read.status, read.body) == (200, body)

    clock.advance(seconds=1)
    second = await create(api, "renewal", {"title": "Renew {{ data.plan }}"})
    assert second.status == 201, second
    listed = await api.request("GET", "/v1/templates")
    assert listed.status == 200
    assert [t["name"] for t in listed.body["templates"]] == ["renewal", "welcome"]
    assert listed.body["templates"][1] == body


async def test_sending_by_template_renders_it_with_the_sends_data(api: Api, pool: asyncpg.Pool) -> None:
    template = (await create(api, properties={"screen": "home", "tone": "warm"})).body
    await api.identify("ada", first_name="Ada")

    sent = await send_template(api, "ada", template["id"], data={"plan": "pro"}, properties={"tone": "bold"},
                               campaign="onboarding")
    assert sent.status == 201, sent
    assert sent.body["content"]["title"] == "Welcome, Ada"
    assert sent.body["content"]["body"] == "Your pro plan is ready."
    assert sent.body["content"]["actions"][0]["label"] == "Start pro"
    # The template's properties are defaults under the send's own.
    assert sent.body["properties"] == {"screen": "home", "tone": "bold"}
    assert sent.body["campaign"] == "onboarding"

    other = await send_template(api, "bo", template["id"], data={"plan": "team"})
    assert other.body["content"]["title"] == "Welcome, friend"
    assert other.body["content"]["body"] == "Your team plan is ready."

    recorded = await pool.fetch("SELECT template_id FROM messages ORDER BY created_at, id")
    assert [r["template_id"] for r in recorded] == [uuid.UUID(template["id"])] * 2
    polled = await api.poll("ada", "phone")
    assert polled.body["messages"][0]["content"] == sent.body["content"]
    # The template itself is unchanged by sending.
    assert (await api.request("GET", f"/v1/templates/{template['id']}")).body == template


async def test_a_send_with_content_records_no_template(api: Api, pool: asyncpg.Pool) -> None:
    assert (await api.send("ada")).status == 201
    assert await pool.fetchval("SELECT template_id FROM messages") is None


async def test_strict_applies_to_a_template_send(api: Api, pool: asyncpg.Pool) -> None:
    template = (await create(api)).body
    refused = await send_template(api, "ada", template["id"], strict=True)
    assert (refused.status, refused.error_code) == (422, "invalid_template"), refused
    assert refused.body["error"]["message"] == "template error in content.body (line 1): data.plan is undefined"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert (await send_template(api, "ada", template["id"], strict=True, data={"plan": "pro"})).status == 201


async def test_an_unknown_template_is_422(api: Api, other_api: Api, pool: asyncpg.Pool) -> None:
    unknown = await send_template(api, "ada", str(uuid.uuid4()))
    assert (unknown.status, unknown.error_code) == (422, "unknown_template"), unknown
    # Another workspace's template is unknown here.
    theirs = (await create(other_api)).body
    foreign = await send_template(api, "ada", theirs["id"], data={"plan": "pro"})
    assert (foreign.status, foreign.error_code) == (422, "unknown_template"), foreign
    assert (await pool.fetchval("SELECT count(*) FROM messages"), await pool.fetchval("SELECT count(*) FROM people")) \
        == (0, 0)


async def test_templates_are_per_workspace(api: Api, other_api: Api) -> None:
    mine = (await create(api)).body
    theirs = await create(other_api)  # the same name in another workspace is fine
    assert theirs.status == 201, theirs
    hidden = await other_api.request("GET", f"/v1/templates/{mine['id']}")
    assert (hidden.status, hidden.error_code) == (404, "unknown_template")
    assert [t["id"] for t in (await other_api.request("GET", "/v1/templates")).body["templates"]] \
        == [theirs.body["id"]]


async def test_a_taken_name_is_409(api: Api) -> None:
    assert (await create(api)).status == 201
    again = await create(api, content={"title": "Other"})
    assert (again.status, again.error_code) == (409, "template_name_taken"), again
    assert len((await api.request("GET", "/v1/templates")).body["templates"]) == 1


async def test_a_broken_template_is_refused_at_creation(api: Api) -> None:
    broken = await create(api, content={"title": "ok", "body": "Hello\n{{ customer.first_name"})
    assert (broken.status, broken.error_code) == (422, "invalid_template"), broken
    assert broken.body["error"]["message"].startswith("template error in content.body (line 2): ")
    unknown_filter = await create(api, content={"title": "{{ x | nosuch }}"})
    assert (unknown_filter.status, unknown_filter.error_code) == (422, "invalid_template")
    assert (await api.request("GET", "/v1/templates")).body == {"templates": []}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"content": {"title": "t"}}, id="no-name"),
        pytest.param({"name": "", "content": {"title": "t"}}, id="empty-name"),
        pytest.param({"name": "x" * 256, "content": {"title": "t"}}, id="long-name"),
        pytest.param({"name": "t"}, id="no-content"),
        pytest.param({"name": "t", "content": {"layout": "modal"}}, id="no-title-or-body"),
        pytest.param({"name": "t", "content": {"title": "t", "layout": "inline"}}, id="inline-without-element"),
        pytest.param({"name": "t", "content": {"title": "t", "image_url": "javascript:alert(1)"}}, id="bad-url"),
        pytest.param({"name": "t", "content": {"title": "t"}, "properties": []}, id="properties-not-object"),
        pytest.param({"name": "t", "content": {"title": "t"}, "data": {}}, id="unknown-field"),
    ],
)
async def test_bad_template_bodies_are_422(api: Api, body: dict[str, Any]) -> None:
    refused = await api.request("POST", "/v1/templates", json=body)
    assert (refused.status, refused.error_code) == (422, "invalid_fields"), refused


async def test_bad_template_requests_get_their_4xx(api: Api) -> None:
    malformed = await api.request("POST", "/v1/templates", data=b"{not json",
                                  headers={"Content-Type": "application/json"})
    assert (malformed.status, malformed.error_code) == (400, "malformed_json")
    for path in (f"/v1/templates/{uuid.uuid4()}", "/v1/templates/not-a-uuid"):
        missing = await api.request("GET", path)
        assert (missing.status, missing.error_code) == (404, "unknown_template"), path
    for method, path in (("POST", "/v1/templates"), ("GET", "/v1/templates"), ("GET", f"/v1/templates/{uuid.uuid4()}")):
        anonymous = await api.request(method, path, json={"name": "t", "content": {"title": "t"}}, auth=False)
        assert (anonymous.status, anonymous.error_code) == (401, "unauthorized"), (method, path)
    wrong_method = await api.request("DELETE", "/v1/templates")
    assert wrong_method.status == 405
