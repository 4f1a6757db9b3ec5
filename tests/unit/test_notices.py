"""Notification payloads: good ones become typed notices; malformed ones are logged and dropped."""

from __future__ import annotations

import logging

import pytest

from storage.notices import Notice, QueueNotice, WorkspaceNotice, parse_notice

LOGGER = "mailslot.storage.notices"


@pytest.mark.parametrize(
    ("payload", "notice"),
    [
        ('{"type": "queued", "workspace": 3, "person": 17, "keys": ["user-1", "ann@example.com"], "at": 1764331200.5}',
         QueueNotice(3, 17, ("user-1", "ann@example.com"), 1764331200.5)),
        ('{"type": "queued", "workspace": 3, "person": 17, "keys": ["user-1"]}',
         QueueNotice(3, 17, ("user-1",), None)),
        ('{"type": "queued", "workspace": 3, "person": 17, "keys": [], "at": null}',
         QueueNotice(3, 17, (), None)),
        ('{"type": "queued", "workspace": 3, "person": 17}',
         QueueNotice(3, 17, (), None)),
        ('{"type": "queued", "workspace": 3, "person": 17, "keys": ["user-1"], "at": 5, "extra": true}',
         QueueNotice(3, 17, ("user-1",), 5.0)),
        ('{"type": "workspace", "workspace": 3}', WorkspaceNotice(3)),
    ],
    ids=["queued", "queued-without-at", "queued-null-at", "queued-without-keys", "unknown-field", "workspace"],
)
def test_good_payloads_parse(payload: str, notice: Notice, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_notice(payload) == notice
    assert caplog.records == []


def test_what_a_send_notifies_parses() -> None:
    """The payload shape storage.send_message builds (orjson, compact)."""
    payload = '{"type":"queued","workspace":1,"person":2,"keys":["u","a@b.c"],"at":1764331200.123456}'

    assert parse_notice(payload) == QueueNotice(1, 2, ("u", "a@b.c"), 1764331200.123456)


MALFORMED = {
    "empty": "",
    "not-json": "{",
    "bad-json-escape": '{"type": "queued\\x"}',
    "json-null": "null",
    "json-number": "5",
    "json-string": '"queued"',
    "json-list": '["queued", 1]',
    "no-type": '{"workspace": 1, "person": 2}',
    "unknown-type": '{"type": "deleted", "workspace": 1}',
    "type-not-string": '{"type": 1, "workspace": 1}',
    "no-workspace": '{"type": "queued", "person": 2, "keys": []}',
    "no-person": '{"type": "queued", "workspace": 1, "keys": []}',
    "workspace-not-a-number": '{"type": "queued", "workspace": "acme", "person": 2}',
    "workspace-null": '{"type": "workspace", "workspace": null}',
    "person-a-list": '{"type": "queued", "workspace": 1, "person": [2]}',
    "keys-not-strings": '{"type": "queued", "workspace": 1, "person": 2, "keys": ["u", 7]}',
    "keys-null": '{"type": "queued", "workspace": 1, "person": 2, "keys": null}',
    "keys-a-number": '{"type": "queued", "workspace": 1, "person": 2, "keys": 7}',
    "at-not-a-number": '{"type": "queued", "workspace": 1, "person": 2, "keys": [], "at": "now"}',
    "at-a-list": '{"type": "queued", "workspace": 1, "person": 2, "keys": [], "at": [1]}',
}


# A string or an object is iterable too: a key list that is not a list would wake the wrong people.
MALFORMED_KEYS = [
    pytest.param('{"type": "queued", "workspace": 1, "person": 2, "keys": "user-1"}',
                 id="keys-a-string"),
    pytest.param('{"type": "queued", "workspace": 1, "person": 2, "keys": {"user-1": 1}}',
                 id="keys-an-object"),
]


@pytest.mark.parametrize(
    "payload", [*(pytest.param(p, id=name) for name, p in MALFORMED.items()), *MALFORMED_KEYS]
)
def test_malformed_payloads_are_logged_and_dropped(payload: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_notice(payload) is None

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "malformed notification" in record.getMessage()


def test_a_huge_malformed_payload_is_logged_shortened(caplog: pytest.LogCaptureFixture) -> None:
    payload = '{"type": "nope", "pad": "' + "x" * 7000 + '"}'

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_notice(payload) is None

    [record] = caplog.records
    assert len(record.getMessage()) < 500

