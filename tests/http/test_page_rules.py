"""Page rules (`content.page`): a send stores a valid rule and devices get it; a malformed one is
a 422 naming the field, and queues nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, assert_message_style

MESSAGE = {"layout": "banner_top", "title": "Billing tip"}


@pytest.mark.parametrize(
    "rule",
    [
        {"glob": "/billing/*"},
        {"glob": "/docs/**"},
        {"pattern": "^/projects/[0-9]+/settings$"},
        {"pattern": "^/(?:a|b)/(?=x)"},
        {"glob": "/" + "p" * 499},
    ],
)
async def test_a_page_rule_is_stored_and_reaches_the_device(api: Api, rule: dict[str, str]) -> None:
    sent = await api.send("user-1", content={**MESSAGE, "page": rule})
    assert sent.status == 201, sent.body
    assert sent.body["content"]["page"] == rule
    polled = await api.poll("user-1", "web-1")
    assert [m["content"]["page"] for m in polled.body["messages"]] == [rule]


async def test_a_message_without_a_rule_has_no_page_field(api: Api) -> None:
    sent = await api.send("user-1", content=MESSAGE)
    assert "page" not in sent.body["content"]


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({}, "$.content.page"),
        ({"glob": "/a", "pattern": "^/a"}, "$.content.page"),
        ({"glob": None, "pattern": None}, "$.content.page"),
        ("/billing/*", "$.content.page"),
        ({"glob": ""}, "$.content.page.glob"),
        ({"glob": "billing/*"}, "$.content.page.glob"),
        ({"glob": "/" + "p" * 500}, "$.content.page.glob"),
        ({"glob": 42}, "$.content.page.glob"),
        ({"pattern": "^/(unclosed"}, "$.content.page.pattern"),
        ({"pattern": "*"}, "$.content.page.pattern"),
        ({"pattern": "^/" + "a" * 499}, "$.content.page.pattern"),
        ({"pattern": "^/(?P<id>[0-9]+)$"}, "$.content.page.pattern"),
        ({"pattern": "(?i)^/billing"}, "$.content.page.pattern"),
        ({"pattern": "\\A/billing\\Z"}, "$.content.page.pattern"),
        ({"pattern": "^/a\x00"}, "$.content.page.pattern"),
        ({"path": "/billing"}, "$.content.page"),
    ],
)
async def test_a_malformed_page_rule_is_refused_naming_the_field(api: Api, rule: Any, field: str) -> None:
    sent = await api.send("user-1", content={**MESSAGE, "page": rule})
    assert (sent.status, sent.error_code) == (422, "invalid_fields"), sent.body
    message = sent.body["error"]["message"]
    assert field in message, message
    assert_message_style(message)
    assert (await api.poll("user-1", "web-1")).body["messages"] == []
