"""Bad input on every endpoint: each gets its 4xx JSON error, never a 500, and nothing is queued or lost.

Every case is one visible row: `endpoint/what-is-wrong`. A body is raw bytes (sent as is), a callable
that builds a JSON value from the workspace's credentials, or a JSON value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from tests.helpers import Api, Reply, assert_message_style

UNKNOWN_UUID = "0193f2c4-0000-7000-8000-000000000000"
KIB = 1024


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
NO_BODY: Any = object()


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: Any
    status: int
    code: str
    headers: dict[str, str] = field(default_factory=dict)
    auth: bool = True


def row(case_id: str, method: str, path: str, body: Any, status: int, code: str, *,
        headers: dict[str, str] | None = None, auth: bool = True) -> Any:
    return pytest.param(Case(method, path, body, status, code, headers or {}, auth), id=case_id)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not MISSING}


def poll(**changes: Any) -> Callable[[Api], dict[str, Any]]:
    return lambda api: _merge({"site_id": api.site_id, "user": "user-1", "device_id": "phone"}, changes)


def events(**changes: Any) -> Callable[[Api], dict[str, Any]]:
    base = {"site_id": "", "user": "user-1", "device_id": "phone",
            "events": [{"message_id": UNKNOWN_UUID, "type": "shown"}]}
    return lambda api: _merge({**base, "site_id": api.site_id}, changes)


def event(**changes: Any) -> Callable[[Api], dict[str, Any]]:
    """An events body whose one report has these changes."""
    return events(events=[_merge({"message_id": UNKNOWN_UUID, "type": "shown"}, changes)])


def device_identify(**changes: Any) -> Callable[[Api], dict[str, Any]]:
    return lambda api: _merge({"site_id": api.site_id, "user": "user-1", "attributes": {"plan_name": "pro"}}, changes)


def broadcast(**changes: Any) -> dict[str, Any]:
    return _merge({"audience": {"ids": ["user-2", "user-3"]}, "content": {"title": "Hi", "body": "all"}}, changes)


def send(**changes: Any) -> dict[str, Any]:
    return _merge({"to": {"id": "user-2"}, "content": {"title": "Hi", "body": "there"}}, changes)


def content(**changes: Any) -> dict[str, Any]:
    return send(content=_merge({"title": "Hi", "body": "there"}, changes))


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def too_large(limit: int = 64 * KIB) -> bytes:
    """Valid JSON one byte over the limit."""
    head, tail = b'{"pad": "', b'"}'
    return head + b"x" * (limit + 1 - len(head) - len(tail)) + tail


# --- The same malformed bodies on every endpoint that reads one. -------------------------------

BODY_ENDPOINTS = [
    ("poll", "POST", "/v1/poll", False),
    ("events", "POST", "/v1/events", False),
    ("device-identify", "POST", "/v1/identify", False),
    ("broadcast", "POST", "/v1/broadcasts", True),
    ("send", "POST", "/v1/messages", True),
    ("identify", "PUT", "/v1/people/user-1", True),
    ("patch-workspace", "PATCH", "/v1/workspace", True),
]

MALFORMED_BODIES = [
    ("malformed-json", b'{"site_id": ', 400, "malformed_json"),
    ("trailing-garbage", b'{"a": 1} xyz', 400, "malformed_json"),
    ("single-quotes", b"{'a': 1}", 400, "malformed_json"),
    ("nan", b'{"a": NaN}', 400, "malformed_json"),
    ("form-encoded", b"site_id=x&user=y", 400, "malformed_json"),
    ("empty-body", NO_BODY, 400, "empty_body"),
    ("invalid-utf8", b'{"user": "\xff\xfe"}', 400, "malformed_json"),
    ("lone-surrogate-escape", b'{"user": "\\ud800"}', 400, "malformed_json"),
    ("array", b"[]", 422, "invalid_fields"),
    ("array-of-object", b'[{"user": "x"}]', 422, "invalid_fields"),
    ("number", b"42", 422, "invalid_fields"),
    ("string", b'"hello"', 422, "invalid_fields"),
    ("null", b"null", 422, "invalid_fields"),
    ("too-deep-for-parser", b"[" * 2000 + b"]" * 2000, 400, "malformed_json"),
    ("over-64-kib", too_large(), 413, "body_too_large"),
]

GENERIC = [
    row(f"{name}/{label}", method, path, body, status, code, auth=auth)
    for name, method, path, auth in BODY_ENDPOINTS
    for label, body, status, code in MALFORMED_BODIES
]

# --- POST /v1/poll ----------------------------------------------------------------------------

POLL = [
    row(f"poll/{label}", "POST", "/v1/poll", body, status, code, auth=False)
    for label, body, status, code in [
        ("missing-site-id", poll(site_id=MISSING), 422, "invalid_fields"),
        ("missing-user", poll(user=MISSING), 422, "invalid_fields"),
        ("missing-device-id", poll(device_id=MISSING), 422, "invalid_fields"),
        ("empty-object", {}, 422, "invalid_fields"),
        ("site-id-int", poll(site_id=42), 422, "invalid_fields"),
        ("site-id-null", poll(site_id=None), 422, "invalid_fields"),
        ("user-int", poll(user=42), 422, "invalid_fields"),
        ("user-object", poll(user={"id": "user-1"}), 422, "invalid_fields"),
        ("device-id-bool", poll(device_id=True), 422, "invalid_fields"),
        ("wait-string", poll(wait="5"), 422, "invalid_fields"),
        ("wait-bool", poll(wait=True), 422, "invalid_fields"),
        ("wait-negative", poll(wait=-1), 422, "invalid_fields"),
        ("wait-huge", poll(wait=10**30), 422, "invalid_fields"),
        ("user-hash-int", poll(user_hash=42), 422, "invalid_fields"),
        ("user-empty", poll(user=""), 422, "invalid_fields"),
        ("user-10000-chars", poll(user="u" * 10_000), 422, "invalid_fields"),
        ("device-id-empty", poll(device_id=""), 422, "invalid_fields"),
        ("device-id-with-spaces", poll(device_id="my phone"), 422, "invalid_fields"),
        ("device-id-129-chars", poll(device_id="d" * 129), 422, "invalid_fields"),
        ("device-id-non-ascii", poll(device_id="téléphone"), 422, "invalid_fields"),
        ("site-id-10000-chars", poll(site_id="s" * 10_000), 422, "invalid_fields"),
        ("user-with-nul", poll(user="user\x001"), 422, "invalid_fields"),
        ("site-id-with-nul", poll(site_id="site_\x00"), 422, "invalid_fields"),
        ("device-id-with-nul", poll(device_id="phone\x00"), 422, "invalid_fields"),
        ("user-hash-with-nul", poll(user_hash="ab\x00cd"), 422, "invalid_fields"),
        ("unknown-site-id", poll(site_id="site_doesnotexist"), 401, "unknown_site"),
        ("deep-nesting", poll(extra=nested(300)), 422, "invalid_fields"),
    ]
]

# --- POST /v1/events --------------------------------------------------------------------------

EVENTS = [
    row(f"events/{label}", "POST", "/v1/events", body, status, code, auth=False)
    for label, body, status, code in [
        ("missing-events", events(events=MISSING), 422, "invalid_fields"),
        ("missing-user", events(user=MISSING), 422, "invalid_fields"),
        ("missing-device-id", events(device_id=MISSING), 422, "invalid_fields"),
        ("events-empty", events(events=[]), 422, "invalid_fields"),
        ("events-object", events(events={"message_id": UNKNOWN_UUID, "type": "shown"}), 422, "invalid_fields"),
        ("events-string", events(events="shown"), 422, "invalid_fields"),
        ("event-number", events(events=[42]), 422, "invalid_fields"),
        ("events-101", events(events=[{"message_id": UNKNOWN_UUID, "type": "shown"}] * 101), 422,
         "invalid_fields"),
        ("message-id-not-uuid", event(message_id="not-a-uuid"), 422, "invalid_fields"),
        ("message-id-int", event(message_id=42), 422, "invalid_fields"),
        ("message-id-missing", event(message_id=MISSING), 422, "invalid_fields"),
        ("type-unknown", event(type="clicked"), 422, "invalid_fields"),
        ("type-missing", event(type=MISSING), 422, "invalid_fields"),
        ("type-int", event(type=1), 422, "invalid_fields"),
        ("action-without-name", event(type="action"), 422, "invalid_fields"),
        ("action-name-65-chars", event(type="action", action="a" * 65), 422, "invalid_fields"),
        ("action-name-int", event(type="action", action=7), 422, "invalid_fields"),
        ("action-name-with-nul", event(type="action", action="tour\x00"), 422, "invalid_fields"),
        ("user-10000-chars", events(user="u" * 10_000), 422, "invalid_fields"),
        ("user-with-nul", events(user="\x00"), 422, "invalid_fields"),
        ("device-id-with-spaces", events(device_id="my phone"), 422, "invalid_fields"),
        ("site-id-with-nul", events(site_id="\x00"), 422, "invalid_fields"),
        ("unknown-site-id", events(site_id="site_doesnotexist"), 401, "unknown_site"),
    ]
]

# --- POST /v1/identify (the SDK's identify) ----------------------------------------------------

DEVICE_IDENTIFY = [
    row(f"device-identify/{label}", "POST", "/v1/identify", body, status, code, auth=False)
    for label, body, status, code in [
        ("missing-site-id", device_identify(site_id=MISSING), 422, "invalid_fields"),
        ("missing-user", device_identify(user=MISSING), 422, "invalid_fields"),
        ("user-int", device_identify(user=42), 422, "invalid_fields"),
        ("user-10000-chars", device_identify(user="u" * 10_000), 422, "invalid_fields"),
        ("user-with-nul", device_identify(user="\x00"), 422, "invalid_fields"),
        ("attributes-array", device_identify(attributes=["pro"]), 422, "invalid_fields"),
        ("attribute-value-with-nul", device_identify(attributes={"plan_name": "p\x00"}), 422, "invalid_fields"),
        ("attribute-name-65-chars", device_identify(attributes={"a" * 65: 1}), 422, "invalid_fields"),
        ("email-invalid", device_identify(attributes={"email": "nope"}), 422, "invalid_fields"),
        ("email-valid", device_identify(attributes={"email": "a@b.com"}), 422, "invalid_fields"),
        ("email-null", device_identify(attributes={"email": None}), 422, "invalid_fields"),
        ("id", device_identify(attributes={"id": "user-2"}), 422, "invalid_fields"),
        ("attributes-101", device_identify(attributes={f"a{i}": i for i in range(101)}), 422, "invalid_fields"),
        ("created-at-string", device_identify(attributes={"created_at": "2020"}), 422, "invalid_fields"),
        ("attributes-300-deep", device_identify(attributes={"tree": nested(300)}), 422, "invalid_fields"),
        ("device-id-with-spaces", device_identify(device_id="my phone"), 422, "invalid_fields"),
        ("unknown-site-id", device_identify(site_id="site_doesnotexist"), 401, "unknown_site"),
    ]
]

# --- POST /v1/broadcasts and GET /v1/broadcasts/{id} -------------------------------------------

BROADCAST = [
    row(f"broadcast/{label}", "POST", "/v1/broadcasts", body, status, code)
    for label, body, status, code in [
        ("missing-audience", broadcast(audience=MISSING), 422, "invalid_fields"),
        ("audience-empty", broadcast(audience={}), 422, "invalid_fields"),
        ("audience-ids-and-all", broadcast(audience={"ids": ["a"], "all": True}), 422, "invalid_fields"),
        ("audience-ids-string", broadcast(audience={"ids": "user-2"}), 422, "invalid_fields"),
        ("audience-ids-empty", broadcast(audience={"ids": []}), 422, "invalid_fields"),
        ("audience-ids-int", broadcast(audience={"ids": [1, 2]}), 422, "invalid_fields"),
        ("audience-id-300-chars", broadcast(audience={"ids": ["p" * 300]}), 422, "invalid_fields"),
        ("audience-id-with-nul", broadcast(audience={"ids": ["user\x002"]}), 422, "invalid_fields"),
        ("audience-10001-ids", broadcast(audience={"ids": ["u"] * 10_001}), 422,
         "invalid_fields"),
        ("audience-emails-invalid", broadcast(audience={"emails": ["nope"]}), 422, "invalid_fields"),
        ("audience-all-string", broadcast(audience={"all": "yes"}), 422, "invalid_fields"),
        ("audience-unknown-field", broadcast(audience={"segment": "vip"}), 422, "invalid_fields"),
        ("content-empty", broadcast(content={}), 422, "invalid_fields"),
        ("content-title-with-nul", broadcast(content={"title": "\x00"}), 422, "invalid_fields"),
        ("priority-10-pow-30", broadcast(priority=10**30), 422, "invalid_fields"),
        ("ttl-negative", broadcast(ttl_s=-1), 422, "invalid_fields"),
        ("expires-at-past", broadcast(expires_at="2001-01-01T00:00:00Z"), 422, "expires_at_in_past"),
        ("properties-300-deep", broadcast(properties=nested(300)), 422, "invalid_fields"),
        ("unknown-field", broadcast(to={"id": "user-2"}), 422, "invalid_fields"),
    ]
] + [
    row(f"{verb.lower()}-broadcast/{label}", verb, f"/v1/broadcasts/{broadcast_id}", NO_BODY, 404,
        "unknown_broadcast")
    for verb in ("GET", "DELETE")
    for label, broadcast_id in [
        ("unknown-uuid", UNKNOWN_UUID), ("not-a-uuid", "not-a-uuid"), ("300-chars", "b" * 300),
        ("percent-nul", "abc%00def"),
    ]
]

# --- POST /v1/messages ------------------------------------------------------------------------

SEND = [
    row(f"send/{label}", "POST", "/v1/messages", body, status, code)
    for label, body, status, code in [
        ("missing-to", send(to=MISSING), 422, "invalid_fields"),
        ("missing-content", send(content=MISSING), 422, "invalid_fields"),
        ("empty-object", {}, 422, "invalid_fields"),
        ("to-string", send(to="user-2"), 422, "invalid_fields"),
        ("to-empty", send(to={}), 422, "invalid_fields"),
        ("to-id-and-email", send(to={"id": "user-2", "email": "a@example.com"}), 422, "invalid_fields"),
        ("to-id-int", send(to={"id": 42}), 422, "invalid_fields"),
        ("to-id-empty", send(to={"id": ""}), 422, "invalid_fields"),
        ("to-id-300-chars", send(to={"id": "p" * 300}), 422, "invalid_fields"),
        ("to-id-10000-chars", send(to={"id": "p" * 10_000}), 422, "invalid_fields"),
        ("to-id-with-nul", send(to={"id": "user\x002"}), 422, "invalid_fields"),
        ("to-email-invalid", send(to={"email": "not-an-email"}), 422, "invalid_fields"),
        ("to-email-with-nul", send(to={"email": "a\x00@example.com"}), 422, "invalid_fields"),
        ("to-unknown-field", send(to={"phone": "+15550100"}), 422, "invalid_fields"),
        ("content-string", send(content="Hi"), 422, "invalid_fields"),
        ("content-empty", send(content={}), 422, "invalid_fields"),
        ("content-title-int", content(title=42), 422, "invalid_fields"),
        ("content-title-1001-chars", content(title="t" * 1001), 422, "invalid_fields"),
        ("content-title-with-nul", content(title="Hi\x00"), 422, "invalid_fields"),
        ("content-body-with-nul", content(body="\x00"), 422, "invalid_fields"),
        ("content-unknown-field", content(colour="red"), 422, "invalid_fields"),
        ("content-layout-unknown", content(layout="popup"), 422, "invalid_fields"),
        ("content-inline-without-element", content(layout="inline"), 422, "invalid_fields"),
        ("content-image-url-ftp", content(image_url="ftp://example.com/a.png"), 422, "invalid_fields"),
        ("content-action-javascript-url",
         content(actions=[{"name": "go", "label": "Go", "url": "javascript:alert(1)"}]), 422, "invalid_fields"),
        ("content-action-missing-label", content(actions=[{"name": "go"}]), 422, "invalid_fields"),
        ("content-action-name-with-nul", content(actions=[{"name": "g\x00", "label": "Go"}]), 422,
         "invalid_fields"),
        ("content-actions-object", content(actions={"name": "go", "label": "Go"}), 422, "invalid_fields"),
        ("priority-string", send(priority="1"), 422, "invalid_fields"),
        ("priority-bool", send(priority=True), 422, "invalid_fields"),
        ("priority-float", send(priority=1.5), 422, "invalid_fields"),
        ("priority-10-pow-30", send(priority=10**30), 422, "invalid_fields"),
        ("priority-minus-10-pow-30", send(priority=-(10**30)), 422, "invalid_fields"),
        ("priority-u64-max", send(priority=2**64 - 1), 422, "invalid_fields"),
        ("priority-1001", send(priority=1001), 422, "invalid_fields"),
        ("persistent-string", send(persistent="yes"), 422, "invalid_fields"),
        ("persistent-int", send(persistent=1), 422, "invalid_fields"),
        ("ttl-negative", send(ttl_s=-60), 422, "invalid_fields"),
        ("ttl-zero", send(ttl_s=0), 422, "invalid_fields"),
        ("ttl-string", send(ttl_s="60"), 422, "invalid_fields"),
        ("ttl-bool", send(ttl_s=True), 422, "invalid_fields"),
        ("ttl-10-pow-30", send(ttl_s=10**30), 422, "invalid_fields"),
        ("ttl-over-a-year", send(ttl_s=367 * 86400), 422, "invalid_fields"),
        ("expires-at-words", send(expires_at="next tuesday"), 422, "invalid_fields"),
        ("expires-at-naive", send(expires_at="2030-01-01T00:00:00"), 422, "invalid_fields"),
        ("expires-at-past", send(expires_at="2001-01-01T00:00:00Z"), 422, "expires_at_in_past"),
        ("expires-at-past-unix", send(expires_at=1_000_000_000), 422, "expires_at_in_past"),
        ("expires-at-negative", send(expires_at=-5), 422, "invalid_fields"),
        ("expires-at-10-pow-30", send(expires_at=10**30), 422, "invalid_fields"),
        # Past year 9999 a time cannot be stored; once this was a 500.
        ("expires-at-year-10000-unix", send(expires_at=253_402_300_800), 422, "invalid_fields"),
        ("expires-at-2-pow-40", send(expires_at=2**40), 422, "invalid_fields"),
        ("expires-at-year-10000-by-offset", send(expires_at="9999-12-31T23:59:59-01:00"), 422, "invalid_fields"),
        ("expires-at-year-0-by-offset", send(expires_at="0001-01-01T00:00:00+01:00"), 422, "invalid_fields"),
        ("expires-at-and-ttl", send(expires_at="2030-01-01T00:00:00Z", ttl_s=60), 422, "invalid_fields"),
        ("properties-array", send(properties=[1, 2]), 422, "invalid_fields"),
        ("properties-string", send(properties="screen=home"), 422, "invalid_fields"),
        ("properties-value-with-nul", send(properties={"screen": "ho\x00me"}), 422, "invalid_fields"),
        ("properties-key-with-nul", send(properties={"scr\x00een": "home"}), 422, "invalid_fields"),
        ("properties-nested-nul", send(properties={"a": [{"b": "\x00"}]}), 422, "invalid_fields"),
        ("properties-300-deep", send(properties=nested(300)), 422, "invalid_fields"),
        ("campaign-empty", send(campaign=""), 422, "invalid_fields"),
        ("campaign-int", send(campaign=42), 422, "invalid_fields"),
        ("campaign-with-nul", send(campaign="onboard\x00"), 422, "invalid_fields"),
        ("unknown-field", send(colour="red"), 422, "invalid_fields"),
        ("unknown-field-typo", send(ttl=60), 422, "invalid_fields"),
    ]
] + [
    row(f"send/idempotency-key-{label}", "POST", "/v1/messages", send(), 422, "invalid_idempotency_key",
        headers={"Idempotency-Key": key})
    for label, key in [("with-space", "two words"), ("256-chars", "k" * 256), ("non-ascii", "clé")]
]

# --- GET / DELETE /v1/messages/{id} -----------------------------------------------------------

MESSAGE_IDS = [
    ("unknown-uuid", UNKNOWN_UUID),
    ("not-a-uuid", "not-a-uuid"),
    ("integer", "42"),
    ("uuid-with-suffix", UNKNOWN_UUID + "0"),
    ("300-chars", "m" * 300),
    ("percent-nul", "abc%00def"),
    ("percent-invalid-utf8", "%FF%FE"),
]

MESSAGE = [
    row(f"{verb.lower()}-message/{label}", verb, f"/v1/messages/{message_id}", NO_BODY, 404, "unknown_message")
    for verb in ("GET", "DELETE")
    for label, message_id in MESSAGE_IDS
]

# --- PUT /v1/people/{id} and GET /v1/people/{id}/messages --------------------------------------

PEOPLE = [
    row(f"identify/{label}", "PUT", path, body, status, code)
    for label, path, body, status, code in [
        ("id-300-chars", "/v1/people/" + "p" * 300, {"first_name": "Ada"}, 422, "invalid_fields"),
        ("id-with-nul", "/v1/people/ada%00", {"first_name": "Ada"}, 422, "invalid_fields"),
        ("email-int", "/v1/people/ada", {"email": 42}, 422, "invalid_fields"),
        ("email-invalid", "/v1/people/ada", {"email": "not an email"}, 422, "invalid_fields"),
        ("email-with-nul", "/v1/people/ada", {"email": "ada\x00@example.com"}, 422, "invalid_fields"),
        ("email-300-chars", "/v1/people/ada", {"email": "a" * 290 + "@example.com"}, 422, "invalid_fields"),
        ("created-at-string", "/v1/people/ada", {"created_at": "yesterday"}, 422, "invalid_fields"),
        ("created-at-bool", "/v1/people/ada", {"created_at": True}, 422, "invalid_fields"),
        ("attribute-name-empty", "/v1/people/ada", {"": "x"}, 422, "invalid_fields"),
        ("attribute-name-65-chars", "/v1/people/ada", {"a" * 65: "x"}, 422, "invalid_fields"),
        ("attribute-name-with-nul", "/v1/people/ada", {"plan\x00": "pro"}, 422, "invalid_fields"),
        ("attribute-value-with-nul", "/v1/people/ada", {"plan_name": "pro\x00"}, 422, "invalid_fields"),
        ("attribute-nested-nul", "/v1/people/ada", {"tags": ["a", "\x00"]}, 422, "invalid_fields"),
        ("attributes-101", "/v1/people/ada", {f"a{i}": i for i in range(101)}, 422, "invalid_fields"),
        ("attributes-300-deep", "/v1/people/ada", {"tree": nested(300)}, 422, "invalid_fields"),
    ]
] + [
    row(f"person-messages/{label}", "GET", path, NO_BODY, status, code)
    for label, path, status, code in [
        ("unknown-person", "/v1/people/nobody/messages", 404, "unknown_person"),
        ("unknown-email", "/v1/people/nobody@example.com/messages?by=email", 404, "unknown_person"),
        ("by-unknown", "/v1/people/user-1/messages?by=phone", 422, "invalid_fields"),
        ("id-300-chars", "/v1/people/" + "p" * 300 + "/messages", 422, "invalid_fields"),
        ("id-with-nul", "/v1/people/ada%00/messages", 422, "invalid_fields"),
        ("id-invalid-utf8", "/v1/people/%FF%FE/messages", 404, "unknown_person"),
        ("by-invalid-utf8", "/v1/people/user-1/messages?by=%FF", 422, "invalid_fields"),
    ]
]

# --- GET / PATCH /v1/workspace ----------------------------------------------------------------

WORKSPACE = [
    row(f"patch-workspace/{label}", "PATCH", "/v1/workspace", body, 422, "invalid_fields")
    for label, body in [
        ("in-app-enabled-string", {"in_app_enabled": "false"}),
        ("in-app-enabled-int", {"in_app_enabled": 0}),
        ("in-app-enabled-null-string", {"in_app_enabled": "null"}),
        ("identity-mode-unknown", {"identity_mode": "strict"}),
        ("identity-mode-with-nul", {"identity_mode": "off\x00"}),
        ("intervals-array", {"intervals": [10, 60, 180]}),
        ("intervals-zero", {"intervals": {"active_s": 0}}),
        ("intervals-negative", {"intervals": {"low_s": -180}}),
        ("intervals-string", {"intervals": {"active_s": "10"}}),
        ("intervals-10-pow-30", {"intervals": {"inactive_s": 10**30}}),
        ("intervals-unknown-field", {"intervals": {"fast_s": 1}}),
        ("recent-days-zero", {"intervals": {"recent_days": 0}}),
        ("lease-negative", {"lease_s": -1}),
        ("lease-under-5", {"lease_s": 4}),
        ("lease-10-pow-30", {"lease_s": 10**30}),
        ("lease-bool", {"lease_s": True}),
        ("lease-float", {"lease_s": 30.5}),
        ("unknown-field", {"colour": "red"}),
        ("read-only-site-id", {"site_id": "site_mine"}),
        ("read-only-name", {"name": "renamed"}),
        ("device-attributes-string", {"device_attributes": "theme"}),
        ("device-attributes-null", {"device_attributes": None}),
        ("device-attributes-number-name", {"device_attributes": [1]}),
        ("device-attributes-empty-name", {"device_attributes": [""]}),
        ("device-attributes-65-chars", {"device_attributes": ["a" * 65]}),
        ("device-attributes-101-names", {"device_attributes": [f"a{i}" for i in range(101)]}),
        ("device-attributes-email", {"device_attributes": ["email"]}),
        ("device-attributes-id", {"device_attributes": ["theme", "id"]}),
        ("device-attributes-with-nul", {"device_attributes": ["the\x00me"]}),
    ]
]

# --- Unknown paths and wrong methods ----------------------------------------------------------

ROUTING = [
    row(f"unknown-path/{label}", method, path, NO_BODY, 404, "not_found")
    for label, method, path in [
        ("v1-nope", "GET", "/v1/nope"),
        ("post-polls", "POST", "/v1/polls"),
        ("v2-poll", "POST", "/v2/poll"),
        ("root-nope", "GET", "/nope"),
        ("person-subpath", "GET", "/v1/people/user-1/unknown"),
        ("message-subpath", "GET", f"/v1/messages/{UNKNOWN_UUID}/events/extra"),
        ("path-300-chars", "GET", "/v1/" + "x" * 300),
    ]
] + [
    row(f"wrong-method/{label}", method, path, NO_BODY, 405, "method_not_allowed")
    for label, method, path in [
        ("get-poll", "GET", "/v1/poll"),
        ("put-poll", "PUT", "/v1/poll"),
        ("get-events", "GET", "/v1/events"),
        ("get-messages", "GET", "/v1/messages"),
        ("delete-messages", "DELETE", "/v1/messages"),
        ("options-messages", "OPTIONS", "/v1/messages"),
        ("put-message", "PUT", f"/v1/messages/{UNKNOWN_UUID}"),
        ("post-message", "POST", f"/v1/messages/{UNKNOWN_UUID}"),
        ("post-person", "POST", "/v1/people/user-1"),
        ("get-person", "DELETE", "/v1/people/user-1"),
        ("post-person-messages", "POST", "/v1/people/user-1/messages"),
        ("post-workspace", "POST", "/v1/workspace"),
        ("delete-workspace", "DELETE", "/v1/workspace"),
        ("get-identify", "GET", "/v1/identify"),
        ("get-broadcasts", "GET", "/v1/broadcasts"),
        ("put-broadcast", "PUT", f"/v1/broadcasts/{UNKNOWN_UUID}"),
        ("put-workspace", "PUT", "/v1/workspace"),
        ("post-healthz", "POST", "/healthz"),
    ]
]

# --- Authorization on every server endpoint ---------------------------------------------------

SERVER_ENDPOINTS = [
    ("send", "POST", "/v1/messages", send()),
    ("broadcast", "POST", "/v1/broadcasts", broadcast()),
    ("get-broadcast", "GET", f"/v1/broadcasts/{UNKNOWN_UUID}", NO_BODY),
    ("get-message", "GET", f"/v1/messages/{UNKNOWN_UUID}", NO_BODY),
    ("recall", "DELETE", f"/v1/messages/{UNKNOWN_UUID}", NO_BODY),
    ("identify", "PUT", "/v1/people/user-1", {"first_name": "Ada"}),
    ("person-messages", "GET", "/v1/people/user-1/messages", NO_BODY),
    ("get-workspace", "GET", "/v1/workspace", NO_BODY),
    ("patch-workspace", "PATCH", "/v1/workspace", {"in_app_enabled": False}),
]

BAD_AUTHORIZATION = [
    ("missing", None),
    ("empty", ""),
    ("bearer-without-key", "Bearer"),
    ("bearer-blank-key", "Bearer    "),
    ("basic-scheme", "Basic dXNlcjpwYXNz"),
    ("key-without-scheme", "msk_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
    ("wrong-key", "Bearer msk_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
    ("key-300-chars", "Bearer " + "k" * 300),
    ("key-8000-chars", "Bearer " + "k" * 8000),
    ("non-ascii-key", "Bearer clé-secrète"),
]

# Every variant on a read and on a write; the two commonest on every server endpoint.
AUTH = [
    row(f"{name}/authorization-{label}", method, path, body, 401, "unauthorized", auth=False,
        headers={} if value is None else {"Authorization": value})
    for name, method, path, body in SERVER_ENDPOINTS
    for label, value in BAD_AUTHORIZATION
    if name in ("send", "get-workspace") or label in ("missing", "wrong-key")
]

ALL_CASES = GENERIC + POLL + EVENTS + DEVICE_IDENTIFY + BROADCAST + SEND + MESSAGE + PEOPLE + WORKSPACE + ROUTING + AUTH


async def perform(api: Api, case: Case) -> Reply:
    body = case.body(api) if callable(case.body) else case.body
    if body is NO_BODY:
        data = None
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **case.headers} if data is not None else dict(case.headers)
    return await api.request(case.method, case.path, data=data, headers=headers, auth=case.auth)


def assert_error(reply: Reply, status: int, code: str) -> None:
    """The contract's error shape, this status and code; nothing leaks from inside."""
    assert (reply.status, reply.error_code) == (status, code), reply
    assert reply.headers["Content-Type"].startswith("application/json"), reply.headers
    assert isinstance(reply.body, dict) and set(reply.body) == {"error"}, reply
    assert set(reply.body["error"]) == {"code", "message"}, reply
    message = reply.body["error"]["message"]
    assert isinstance(message, str) and message, reply
    assert "Traceback" not in message and "asyncpg" not in message, reply
    assert_message_style(message)


@pytest.mark.parametrize("case", ALL_CASES)
async def test_bad_input_gets_its_4xx(api: Api, case: Case) -> None:
    reply = await perform(api, case)
    assert_error(reply, case.status, case.code)
    if case.status == 405:
        assert reply.headers.get("Allow"), reply.headers


async def test_bad_input_leaves_the_queue_intact(api: Api, pool: asyncpg.Pool) -> None:
    """After the whole barrage in one database, the message sent before it is delivered exactly once."""
    sent = await api.send("user-1", "Before the barrage")
    assert sent.status == 201, sent

    for param in ALL_CASES:
        (case,) = param.values
        reply = await perform(api, case)
        assert reply.status == case.status, (param.id, reply)

    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await pool.fetchval("SELECT count(*) FROM people") == 1
    assert await pool.fetchval("SELECT count(*) FROM broadcasts") == 0
    workspace = await api.request("GET", "/v1/workspace")
    assert workspace.body["in_app_enabled"] is True
    assert workspace.body["intervals"] == {"active_s": 10, "inactive_s": 60, "low_s": 180, "recent_days": 30}
    assert workspace.body["lease_s"] == 300

    # The barrage polled as device "phone"; had any of it claimed, "tablet" would get nothing.
    first = await api.poll("user-1", "tablet")
    assert [m["id"] for m in first.body["messages"]] == [sent.body["id"]]
    other = await api.poll("user-1", "phone")
    assert other.body["messages"] == []
    shown = await api.show("user-1", "tablet", sent.body["id"])
    assert shown.body == {"accepted": 1, "rejected": []}
    again = await api.poll("user-1", "phone")
    assert again.body["messages"] == []

    read = await api.message(sent.body["id"])
    assert read.body["state"] == "shown"
    assert [(e["type"], e["device_id"]) for e in read.body["events"]] == [
        ("queued", None), ("offered", "tablet"), ("shown", "tablet"),
    ]


# --- Bad bytes below JSON: raw HTTP, so nothing in the client can clean them up ----------------


async def raw_request(api: Api, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send one hand-written HTTP/1.1 request; returns status, headers and body."""
    server = api.client.server
    reader, writer = await asyncio.wait_for(asyncio.open_connection(server.host, server.port), 5)
    try:
        writer.write(head + b"\r\nHost: localhost\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    header_block, _, payload = response.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, payload


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        pytest.param(b"GET /v1/workspace HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\xfd", 401, "unauthorized",
                     id="authorization-invalid-utf8"),
        pytest.param(b"GET /v1/workspace HTTP/1.1\r\nAuthorization: \xc3\x28 key", 401, "unauthorized",
                     id="authorization-scheme-invalid-utf8"),
        pytest.param(b"GET /v1/workspace HTTP/1.1\r\nAuthorization: Bearer {key}\r\nOrigin: \xff\xfe", 403,
                     "cross_origin_forbidden", id="origin-invalid-utf8"),
        pytest.param(b"GET /v1/workspace HTTP/1.1\r\nAuthorization: Bearer {key}\r\nOrigin: http://[", 403,
                     "cross_origin_forbidden", id="origin-unparseable"),
        pytest.param(b"POST /v1/messages HTTP/1.1\r\nAuthorization: Bearer {key}\r\nIdempotency-Key: \xff\xfe",
                     422, "invalid_idempotency_key", id="idempotency-key-invalid-utf8"),
    ],
)
async def test_bad_bytes_in_request_line_and_headers(api: Api, head: bytes, status: int, code: str) -> None:
    body = json.dumps(send()).encode() if head.startswith(b"POST") else b""
    got_status, headers, payload = await raw_request(api, head.replace(b"{key}", api.api_key.encode()), body)
    assert headers["content-type"].startswith("application/json"), (got_status, payload)
    assert (got_status, json.loads(payload)["error"]["code"]) == (status, code), payload


async def test_an_oversized_chunked_body_is_413(api: Api) -> None:
    """Without a Content-Length the cap still holds while the body streams in."""
    server = api.client.server
    reader, writer = await asyncio.wait_for(asyncio.open_connection(server.host, server.port), 5)
    try:
        writer.write(b"POST /v1/poll HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16 * KIB
        for _ in range(6):
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        writer.write(b"0\r\n\r\n")
        with contextlib.suppress(ConnectionError):  # the server may answer and close mid-body
            await writer.drain()
        response = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), response[:200]
    assert json.loads(payload)["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET /v1/people/\xff\xfe/messages HTTP/1.1\r\nAuthorization: Bearer {key}",
                     id="path-raw-invalid-utf8"),
        pytest.param(b"GET /v1/messages/\xff HTTP/1.1\r\nAuthorization: Bearer {key}",
                     id="message-id-raw-invalid-utf8"),
        pytest.param(b"GET /v1/workspace HTTP/1.1\r\nAuthorization: Bearer " + b"k" * 10_000,
                     id="authorization-over-8190-bytes"),
        pytest.param(b"GET /v1/" + b"x" * 10_000 + b" HTTP/1.1", id="request-line-over-8190-bytes"),
        pytest.param(b"GET /v1/workspace HTTP/1.1\r\nAuthorization: Bearer a\x00b", id="nul-in-header"),
        pytest.param(b"GET /v1/workspace HTTP/1.1\r\nAuthorization Bearer {key}", id="header-without-colon"),
        pytest.param(b"GET /v1/workspace HTTP/9.9", id="unknown-http-version"),
    ],
)
async def test_rejected_by_the_http_parser(api: Api, head: bytes) -> None:
    """aiohttp's parser answers these 400 before the app sees a request, so the body is its plain text.

    They must still be a 400 (never a 500) and leave the server answering.
    """
    status, _, payload = await raw_request(api, head.replace(b"{key}", api.api_key.encode()))
    assert status == 400, payload
    assert b"Traceback" not in payload
    assert (await api.request("GET", "/v1/workspace")).status == 200


def header(reply: Reply, name: str) -> str | None:
    return {k.lower(): v for k, v in reply.headers.items()}.get(name.lower())


@pytest.mark.parametrize("given", ["has spaces", "x" * 200, "semi;colon", "ünïcode"])
async def test_bad_request_id_is_replaced(api: Api, given: str) -> None:
    """A request id the server cannot log safely is replaced by its own, never echoed."""
    reply = await api.request("GET", "/v1/nope", headers={"X-Request-Id": given})
    assert_error(reply, 404, "not_found")
    assert header(reply, "X-Request-Id") not in (None, "", given), reply.headers


async def test_sane_request_id_is_echoed(api: Api) -> None:
    reply = await api.request("GET", "/v1/nope", headers={"X-Request-Id": "req-42.a:b"})
    assert header(reply, "X-Request-Id") == "req-42.a:b"


# --- Good rows beside the bad ones: what a sloppy but valid request still gets ----------------


async def test_device_api_ignores_unknown_fields(api: Api) -> None:
    """Device bodies are forward compatible: an SDK newer than the gateway may send more fields."""
    reply = await api.poll("user-1", "phone", sdk_version="9.9.9", screen={"w": 390})
    assert reply.status == 200, reply
    assert reply.body["messages"] == []


async def test_events_on_unknown_message_are_rejected_per_report(api: Api) -> None:
    reply = await api.report("user-1", "phone", {"message_id": UNKNOWN_UUID, "type": "shown"})
    assert reply.status == 200, reply
    assert reply.body == {"accepted": 0, "rejected": [
        {"message_id": UNKNOWN_UUID, "type": "shown", "code": "unknown_message"},
    ]}


async def test_message_of_another_workspace_is_unknown(api: Api, other_api: Api) -> None:
    sent = await other_api.send("user-1", "Globex only")
    assert sent.status == 201, sent
    for method in ("GET", "DELETE"):
        reply = await api.request(method, f"/v1/messages/{sent.body['id']}")
        assert_error(reply, 404, "unknown_message")
    assert (await other_api.message(sent.body["id"])).body["state"] == "queued"


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    reply = await api.request("GET", "/v1/workspace", auth=False, headers={"Authorization": f"bearer {api.api_key}"})
    assert reply.status == 200, reply


async def test_exactly_64_kib_is_accepted(api: Api) -> None:
    body = json.dumps(send(properties={"pad": ""})).encode()
    padded = body.replace(b'"pad": ""', b'"pad": "' + b"x" * (64 * KIB - len(body)) + b'"')
    assert len(padded) == 64 * KIB
    reply = await api.request("POST", "/v1/messages", data=padded, headers={"Content-Type": "application/json"})
    assert reply.status == 201, reply


async def test_big_but_valid_numbers_in_free_json_are_kept(api: Api) -> None:
    reply = await api.send("user-1", properties={"big": 2**63 - 1, "float": 1e300, "neg": -(2**63)})
    assert reply.status == 201, reply
    assert reply.body["properties"] == {"big": 2**63 - 1, "float": 1e300, "neg": -(2**63)}


# --- Cross-origin and CORS --------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), [pytest.param(m, p, b, id=n) for n, m, p, b in SERVER_ENDPOINTS])
async def test_server_api_refuses_cross_origin(api: Api, pool: asyncpg.Pool, method: str, path: str,
                                               body: Any) -> None:
    case = Case(method, path, body, 403, "cross_origin_forbidden", {"Origin": "https://evil.example"})
    assert_error(await perform(api, case), 403, "cross_origin_forbidden")
    # Refused before anything ran: no message, no person, the workspace still enabled.
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await pool.fetchval("SELECT count(*) FROM people") == 0
    assert await pool.fetchval("SELECT count(*) FROM broadcasts") == 0
    assert (await api.request("GET", "/v1/workspace")).body["in_app_enabled"] is True


async def test_server_api_refuses_null_origin(api: Api) -> None:
    reply = await api.request("GET", "/v1/workspace", headers={"Origin": "null"})
    assert_error(reply, 403, "cross_origin_forbidden")


async def test_server_api_answers_its_own_origin(api: Api) -> None:
    host = f"{api.client.server.host}:{api.client.server.port}"
    reply = await api.request("GET", "/v1/workspace", headers={"Origin": f"http://{host}"})
    assert reply.status == 200, reply
    assert "Access-Control-Allow-Origin" not in reply.headers


@pytest.mark.parametrize("path", ["/v1/poll", "/v1/events", "/v1/identify"])
async def test_device_api_preflight(api: Api, path: str) -> None:
    reply = await api.request("OPTIONS", path, auth=False, headers={
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type",
    })
    assert reply.status == 204, reply
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert "content-type" in reply.headers["Access-Control-Allow-Headers"].lower()


async def test_device_api_answers_any_origin_and_exposes_next_poll(api: Api) -> None:
    reply = await api.request("POST", "/v1/poll", auth=False, headers={"Origin": "https://shop.example"},
                              json={"site_id": api.site_id, "user": "user-1", "device_id": "phone"})
    assert reply.status == 200, reply
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    exposed = {h.strip().lower() for h in reply.headers["Access-Control-Expose-Headers"].split(",")}
    assert "x-mailslot-next-poll" in exposed
    assert reply.headers["X-Mailslot-Next-Poll"] == str(reply.body["next_poll_s"])


async def test_device_api_errors_are_readable_cross_origin(api: Api) -> None:
    """A browser only lets the page read an error if the error carries the CORS header too."""
    reply = await api.request("POST", "/v1/poll", auth=False, headers={"Origin": "https://shop.example"},
                              json={"site_id": api.site_id, "user": "user-1", "device_id": "my phone"})
    assert_error(reply, 422, "invalid_fields")
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
