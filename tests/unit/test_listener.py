"""Notification payloads: good ones become typed notices; malformed ones are logged and dropped."""

from __future__ import annotations

import logging

import pytest

from storage.listener import Listener, Notice, QueueNotice, WorkspaceNotice, parse_notice
from storage.messages import NOTIFY_CHANNEL

LOGGER = "mailslot.storage.listener"


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


def test_the_listener_hands_on_good_notices_and_survives_bad_ones_and_handler_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[Notice] = []

    def on_notice(notice: Notice) -> None:
        received.append(notice)
        if isinstance(notice, WorkspaceNotice):
            raise RuntimeError("handler bug")

    listener = Listener("postgresql://unused", on_notice, lambda: None)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        listener._dispatch(None, 1, NOTIFY_CHANNEL, "garbage")
        listener._dispatch(None, 1, NOTIFY_CHANNEL, '{"type": "workspace", "workspace": 4}')
        listener._dispatch(None, 1, NOTIFY_CHANNEL, '{"type": "queued", "workspace": 4, "person": 1, "keys": ["u"]}')

    assert received == [WorkspaceNotice(4), QueueNotice(4, 1, ("u",), None)]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "malformed notification" in messages[0]
    assert "handler failed" in messages[1]
