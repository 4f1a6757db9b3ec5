"""Request parsing: 400 for what is not a JSON object, 422 naming the field for what PostgreSQL cannot store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.errors import ApiError, BadRequest, Unprocessable
from gateway.http.schemas import MAX_DEPTH, PollRequest, SendRequest, parse_body, parse_object, parse_poll


def nested(depth: int) -> Any:
    """A JSON value `depth` containers deep."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "empty_body"),
        (b"{", "malformed_json"),
        (b'{"a": "\xff"}', "malformed_json"),
        (b'{"a": "\x00"}', "malformed_json"),  # a raw control character is not JSON
        (b'{"a": 1e400}', "malformed_json"),
    ],
)
def test_not_json_is_400(raw: bytes, code: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_object(raw)
    assert caught.value.code == code


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"x"', b"null", b"true"])
def test_json_but_not_an_object_is_422(raw: bytes) -> None:
    with pytest.raises(Unprocessable):
        parse_object(raw)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"user": "a\x00b"}, "$.user"),
        ({"p": {"q": ["ok", "\x00"]}}, "$.p.q[1]"),
        ({"p": {"k\x00": 1}}, "$.p"),
        ({"\x00": 1}, "$"),
    ],
)
def test_nul_anywhere_is_422_naming_where(value: Any, where: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_object(body(value))
    assert caught.value.status == 422
    assert f"`{where}`" in caught.value.message
    assert "NUL" in caught.value.message


def test_an_escaped_backslash_before_u0000_is_not_nul() -> None:
    """`\\\\u0000` in JSON is the six characters \\u0000, which PostgreSQL stores fine."""
    assert parse_object(b'{"a": "\\\\u0000"}') == {"a": "\\u0000"}


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert parse_object(body(nested(MAX_DEPTH))) == nested(MAX_DEPTH)


def test_nesting_past_the_limit_is_422() -> None:
    with pytest.raises(Unprocessable, match=f"deeper than {MAX_DEPTH}"):
        parse_object(body(nested(MAX_DEPTH + 1)))


def test_many_flat_brackets_are_not_deep() -> None:
    value = {"list": [[i] for i in range(MAX_DEPTH * 3)]}
    assert parse_object(body(value)) == value


def test_the_limit_leaves_room_for_orjson() -> None:
    """orjson refuses to write more than 254 levels; responses wrap a body's values a few levels deeper."""
    assert MAX_DEPTH + 8 < 254


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"site_id": "s", "user": 42, "device_id": "d"}, "$.user"),
        ({"site_id": "s", "user": "u", "device_id": "a b"}, "$.device_id"),
        ({"site_id": "s", "user": "u"}, "device_id"),
        ({"site_id": "s", "user": "u", "device_id": "d", "wait": True}, "$.wait"),
    ],
)
def test_validation_errors_name_the_field(value: Any, field: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_body(body(value), PollRequest)
    assert field in caught.value.message
    assert caught.value.code == "invalid_fields"


def test_server_bodies_refuse_unknown_fields() -> None:
    with pytest.raises(Unprocessable, match="colour"):
        parse_body(body({"to": {"id": "u"}, "content": {"title": "t"}, "colour": "red"}), SendRequest)


def test_device_bodies_ignore_unknown_fields() -> None:
    parsed = parse_body(body({"site_id": "s", "user": "u", "device_id": "d", "sdk": "9.9"}), PollRequest)
    assert (parsed.site_id, parsed.user, parsed.device_id, parsed.wait) == ("s", "u", "d", 0)


_POLL = b'"site_id": "site_1", "device_id": "web-1", "user": "ada"'
_EVENT = b'{"message_id": "6f1c3f5e-8f4b-4b7e-9a57-3b2f2d3c9a10", "type": "shown"}'


@pytest.mark.parametrize("raw", [
    b"{" + _POLL + b"}",
    b" {" + _POLL + b', "wait": 30, "platform": "web"} ',
    b"{" + _POLL + b', "wait": 1.5E2, "user_hash": "ab"}',
    b"{" + _POLL + b', "events": [' + _EVENT + b"]}",
    b'{"site_id": "site_1", "device_id": "web-1", "anonymous_id": "anon_0123456789abcdef"}',
    b'{"site_id": "site_1", "device_id": "web-1", "user": "ada", "user": "bob"}',  # the last one wins in both
    b"",
    b"{",
    b"[]",
    b'"poll"',
    b"\xef\xbb\xbf{" + _POLL + b"}",
    b"{" + _POLL + b"} x",
    b"{" + _POLL + b",}",
    b'{"site_id": "site_1", "device_id": "web-1", "user": "\\ud800"}',
    b'{"site_id": "site_1", "device_id": "web-1", "user": "\xff"}',
    b'{"site_id": "site_1", "device_id": "web-1", "user": "a\\u0000"}',
    b'{"site_id": "site_1", "device_id": "web 1", "user": "ada"}',
    b'{"site_id": "", "device_id": "web-1", "user": "ada"}',
    b'{"device_id": "web-1", "user": "ada"}',
    b"{" + _POLL + b', "user": null}',
    b'{"site_id": "site_1", "device_id": "web-1"}',
    b'{"site_id": "site_1", "device_id": "web-1", "user": "ada", "anonymous_id": "anon_0123456789abcdef"}',
    b"{" + _POLL + b', "wait": 1e400}',
    b"{" + _POLL + b', "wait": 99999999999999999999999}',
    b"{" + _POLL + b', "wait": -1}',
    b"{" + _POLL + b', "wait": "30"}',
    b"{" + _POLL + b', "wait": true}',
    b"{" + _POLL + b', "events": null}',
    b"{" + _POLL + b', "events": [{"message_id": "x", "type": "shown"}]}',
    b"{" + _POLL + b', "events": [{"message_id": "6f1c3f5e-8f4b-4b7e-9a57-3b2f2d3c9a10", "type": "action"}]}',
    b"{" + _POLL + b', "platform": "tv"}',
    b"{" + _POLL + b', "x": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}",
])
def test_a_poll_decoded_directly_reads_exactly_as_through_parse_body(raw: bytes) -> None:
    def outcome(parse: Any) -> object:
        try:
            return parse()
        except ApiError as exc:
            return (type(exc), exc.code, exc.message)

    expected = outcome(lambda: parse_body(raw, PollRequest))
    assert outcome(lambda: parse_poll(raw)) == expected
