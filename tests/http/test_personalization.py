"""Liquid personalization of single sends: rendered at queue time with `customer` and `data`."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from gateway.core.clock import FixedClock
from tests.helpers import Api, Reply

HOSTILE = "<img src=x onerror=alert(1)>"


async def send(api: Api, to: dict[str, str] | str, content: dict[str, Any], **fields: Any) -> Reply:
    return await api.send(to, content=content, **fields)


def title(reply: Reply) -> str:
    """The sent message's rendered title; a refused send fails with its answer, not a KeyError."""
    assert reply.status == 201, reply
    return str(reply.body["content"]["title"])


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """(people, messages, events) in the whole database."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM people), (SELECT count(*) FROM messages), (SELECT count(*) FROM events)"
    )
    return (row[0], row[1], row[2])


async def test_attributes_and_per_send_data_render_in_every_text_field(api: Api) -> None:
    assert (await api.identify("ada", email="ada@example.com", first_name="Ada", plan_name="pro")).status == 200
    sent = await send(
        api,
        "ada",
        {
            "layout": "modal",
            "title": "Hi {{ customer.first_name }}",
            "body": "You are on {{ customer.plan_name | upcase }}. Order #{{ data.order.number }} ships "
                    "{{ data.order.when }}. ({{ customer.id }}, {{ customer.email }})",
            "image_url": "https://cdn.example.com/plans/{{ customer.plan_name }}.png",
            "actions": [{"name": "track", "label": "Track {{ data.order.number }}",
                         "url": "https://example.com/orders/{{ data.order.number }}"}],
        },
        data={"order": {"number": 1234, "when": "tomorrow"}},
        campaign="orders",
    )
    assert sent.status == 201, sent
    expected = {
        "layout": "modal",
        "title": "Hi Ada",
        "body": "You are on PRO. Order #1234 ships tomorrow. (ada, ada@example.com)",
        "image_url": "https://cdn.example.com/plans/pro.png",
        "actions": [{"name": "track", "label": "Track 1234", "url": "https://example.com/orders/1234"}],
        "element_id": None,
    }
    assert sent.body["content"] == expected
    # The device gets the rendered text, not the template.
    polled = await api.poll("ada", "phone")
    assert polled.body["messages"][0]["content"] == expected


async def test_customer_holds_the_backends_attributes_and_only_the_listed_device_ones(api: Api) -> None:
    await api.identify("ada", plan_name="free")
    assert (await api.device_identify("ada", {"plan_name": "enterprise", "theme": "dark"})).status == 200
    content = {"title": "{{ customer.plan_name }}/{{ customer.theme | default: 'none' }}"}

    assert title(await send(api, "ada", content)) == "free/none"
    assert title(await send(api, "newcomer", content)) == "/none"
    strict = await send(api, "ada", {"title": "{{ customer.theme }}"}, strict=True)
    assert (strict.status, strict.error_code) == (422, "invalid_template"), strict

    assert (await api.patch_workspace(device_attributes=["theme", "plan_name"])).status == 200
    assert title(await send(api, "ada", content)) == "free/dark"
    assert title(await send(api, {"email": "ada@example.com"}, content)) == "/none"


async def test_a_send_by_email_sees_the_person_known_under_that_email(api: Api) -> None:
    await api.identify("ada", email="ada@example.com", first_name="Ada")
    sent = await send(api, {"email": "ADA@example.com"}, {"title": "{{ customer.first_name }} ({{ customer.id }})"})
    assert sent.status == 201, sent
    assert sent.body["content"]["title"] == "Ada (ada)"


async def test_a_new_person_has_no_attributes_and_defaults_fill_in(api: Api) -> None:
    sent = await send(api, "newcomer", {"title": "Hi {{ customer.first_name | default: 'there' }}",
                                        "body": "[{{ customer.plan_name }}] {{ customer.id }}"}, strict=False)
    assert sent.status == 201, sent
    assert (sent.body["content"]["title"], sent.body["content"]["body"]) == ("Hi there", "[] newcomer")


async def test_rendering_happens_once_when_the_message_is_queued(api: Api) -> None:
    await api.identify("ada", first_name="Ada")
    sent = await send(api, "ada", {"title": "Hi {{ customer.first_name }}"})
    await api.identify("ada", first_name="Augusta")
    polled = await api.poll("ada", "phone")
    assert polled.body["messages"][0]["content"]["title"] == "Hi Ada"
    assert (await api.message(sent.body["id"])).body["content"]["title"] == "Hi Ada"


async def test_a_hostile_attribute_is_stored_as_text(api: Api) -> None:
    """Liquid does not escape and does not strip: the SDK puts text in the page as text."""
    await api.identify("mallory", first_name=HOSTILE)
    sent = await send(api, "mallory", {"title": "Hi {{ customer.first_name }}", "body": "{{ data.note }}"},
                      data={"note": "<script>alert(2)</script>"})
    assert sent.status == 201, sent
    polled = await api.poll("mallory", "phone")
    content = polled.body["messages"][0]["content"]
    assert content["title"] == f"Hi {HOSTILE}"
    assert content["body"] == "<script>alert(2)</script>"


async def test_content_without_liquid_is_stored_as_given(api: Api) -> None:
    sent = await send(api, "ada", {"title": "Save 20% {today}", "body": "} {% not a tag"}, strict=True)
    # `{%` starts a tag, so this one is a template, and a broken one.
    assert (sent.status, sent.error_code) == (422, "invalid_template")
    plain = await send(api, "ada", {"title": "Save 20% {today}", "body": "Braces } { stay"}, strict=True)
    assert plain.status == 201, plain
    assert (plain.body["content"]["title"], plain.body["content"]["body"]) == ("Save 20% {today}", "Braces } { stay")


@pytest.mark.parametrize(
    ("content", "field", "line", "reason"),
    [
        pytest.param({"title": "Hi {{ customer.first_name"}, "title", 1, "expected '}}'", id="unclosed-output"),
        pytest.param({"title": "t", "body": "Hello\nthere\n{% if %}x{% endif %}"}, "body", 3,
                     "missing expression", id="empty-if"),
        pytest.param({"title": "t", "body": "a\n{% for x in data.items %}{{ x }}"}, "body", 2, "endfor",
                     id="unclosed-for"),
        pytest.param({"title": "{{ customer.first_name | shout }}"}, "title", 1, "unknown filter 'shout'",
                     id="unknown-filter"),
        pytest.param({"title": "t", "actions": [{"name": "a", "label": "{% nope %}"}]}, "actions[0].label", 1,
                     "nope", id="action-label"),
    ],
)
async def test_a_broken_template_is_a_422_naming_field_line_and_reason_and_queues_nothing(
    api: Api, pool: asyncpg.Pool, content: dict[str, Any], field: str, line: int, reason: str
) -> None:
    refused = await send(api, "ada", content)
    assert (refused.status, refused.error_code) == (422, "invalid_template"), refused
    message = refused.body["error"]["message"]
    assert message.startswith(f"template error in content.{field} (line {line}): "), message
    assert reason in message
    assert await counts(pool) == (0, 0, 0)


async def test_strict_mode_refuses_a_missing_variable_and_leaves_nothing_behind(api: Api, pool: asyncpg.Pool) -> None:
    content = {"title": "Welcome", "body": "Hi {{ customer.first_name }},\nyour plan: {{ data.plan }}"}
    refused = await send(api, "ada", content, strict=True, data={"plan": "pro"})
    assert (refused.status, refused.error_code) == (422, "invalid_template"), refused
    assert refused.body["error"]["message"] == (
        "template error in content.body (line 1): customer.first_name is undefined"
    )
    # The person would have been new: the render ran in the send's transaction, which rolled back.
    assert await counts(pool) == (0, 0, 0)
    assert (await api.person_messages("ada")).error_code == "unknown_person"

    missing_data = await send(api, "ada", {"title": "{{ data.plan }}"}, strict=True)
    assert missing_data.body["error"]["message"] == "template error in content.title (line 1): data.plan is undefined"

    # Without strict, a missing variable renders as nothing.
    lenient = await send(api, "ada", content, data={"plan": "pro"})
    assert lenient.status == 201, lenient
    assert lenient.body["content"]["body"] == "Hi ,\nyour plan: pro"


async def test_default_satisfies_strict_mode(api: Api) -> None:
    sent = await send(api, "ada", {"title": "Hi {{ customer.first_name | default: 'there' }}",
                                   "body": "{{ data.plan | default: 'free' }}"}, strict=True)
    assert sent.status == 201, sent
    assert (sent.body["content"]["title"], sent.body["content"]["body"]) == ("Hi there", "free")

    await api.identify("bo", first_name="Bo")
    known = await send(api, "bo", {"title": "Hi {{ customer.first_name }}"}, strict=True)
    assert known.status == 201, known
    assert known.body["content"]["title"] == "Hi Bo"


async def test_a_refused_render_for_a_known_person_queues_nothing(api: Api, pool: asyncpg.Pool) -> None:
    await api.identify("ada", first_name="Ada")
    before = await counts(pool)
    refused = await send(api, "ada", {"title": "{{ customer.plan_name }}"}, strict=True)
    assert refused.error_code == "invalid_template"
    assert await counts(pool) == before
    listed = await api.person_messages("ada")
    assert (listed.status, listed.body["messages"]) == (200, [])


async def test_rendered_content_must_still_be_valid(api: Api, pool: asyncpg.Pool) -> None:
    refused = await send(api, "ada", {"title": "t", "body": "{{ data.text }}"}, data={"text": "x" * 10_001})
    assert (refused.status, refused.error_code) == (422, "invalid_template"), refused
    assert "content.body" in refused.body["error"]["message"]
    assert await counts(pool) == (0, 0, 0)


async def test_a_runaway_template_is_a_422_not_a_hang(api: Api) -> None:
    refused = await send(api, "ada", {"title": "{% for i in (1..1000000000) %}x{% endfor %}"})
    assert (refused.status, refused.error_code) == (422, "template_too_costly"), refused
    assert "more than 10000 loop iterations" in refused.body["error"]["message"]


async def test_idempotency_replays_a_personalized_send(api: Api, clock: FixedClock) -> None:
    await api.identify("ada", first_name="Ada")
    key = {"Idempotency-Key": "welcome-ada"}
    content = {"title": "Hi {{ customer.first_name }}", "body": "{{ data.n }}"}
    first = await send(api, "ada", content, data={"n": 1}, headers=key)
    assert first.status == 201, first
    clock.advance(seconds=5)
    retry = await send(api, "ada", content, data={"n": 1}, headers=key)
    assert (retry.status, retry.headers.get("Idempotent-Replayed")) == (200, "true")
    assert retry.body["id"] == first.body["id"]
    assert retry.body["content"]["title"] == "Hi Ada"
    other_data = await send(api, "ada", content, data={"n": 2}, headers=key)
    assert (other_data.status, other_data.error_code) == (422, "idempotency_key_reused")
    assert (await api.poll("ada", "phone")).message_ids == [first.body["id"]]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"data": ["not", "an", "object"]}, id="data-not-object"),
        pytest.param({"data": "x"}, id="data-string"),
        pytest.param({"strict": "yes"}, id="strict-not-bool"),
        pytest.param({"template_id": "not-a-uuid"}, id="template-id-not-uuid"),
        pytest.param({"template_id": "6f1c1c1e-8d5b-4d59-9a57-6f5a7e8e9b10"}, id="content-and-template"),
    ],
)
async def test_bad_personalization_fields_are_422(api: Api, pool: asyncpg.Pool, fields: dict[str, Any]) -> None:
    refused = await send(api, "ada", {"title": "Hi"}, **fields)
    assert (refused.status, refused.error_code) == (422, "invalid_fields"), refused
    assert await counts(pool) == (0, 0, 0)


async def test_a_send_needs_content_or_a_template(api: Api) -> None:
    refused = await api.request("POST", "/v1/messages", json={"to": {"id": "ada"}})
    assert (refused.status, refused.error_code) == (422, "invalid_fields"), refused
    assert "`content` or `template_id`" in refused.body["error"]["message"]
