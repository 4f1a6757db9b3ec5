"""Notification payloads: good ones become typed notices; malformed ones are logged and dropped.

The other half of the protocol's test, what each statement really sends, needs PostgreSQL:
tests/storage/test_notices.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from storage.notices import NOTIFY_CHANNEL, Notice, QueueNotice, WorkspaceNotice, parse_notice
from storage.sql import queries

LOGGER = "mailslot.storage.notices"
STORAGE = Path(__file__).resolve().parents[2] / "storage"


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
    """The payload shape of an orjson-built notice (compact), as gateways before migration 0006 sent it."""
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


def test_what_the_database_notifies_parses() -> None:
    """The shape mailslot_notify_v1 sends: jsonb text, keys sorted by length, `at` a numeric."""
    payload = '{"at": 1764331200.123456, "keys": ["u", "a@b.c"], "type": "queued", "person": 2, "workspace": 1}'

    assert parse_notice(payload) == QueueNotice(1, 2, ("u", "a@b.c"), 1764331200.123456)


# --- One channel, one place per side --------------------------------------------------------------


def test_no_statement_calls_pg_notify_itself() -> None:
    """Statements wake polls through the mailslot_notify_*_v1 functions, which own channel and payload."""
    for name, statement in queries.items():
        assert "pg_notify" not in statement.lower(), name
        assert NOTIFY_CHANNEL not in statement, name


def test_the_channel_is_written_once_in_sql_and_once_in_python() -> None:
    sql_hits = [p.name for p in sorted((STORAGE / "migrations").glob("*.sql"))
                for _ in range(p.read_text(encoding="utf-8").count(NOTIFY_CHANNEL))]
    assert sql_hits == ["0006_notify_functions.sql"]
    python_hits = [p.name for p in sorted(STORAGE.rglob("*.py"))
                   for _ in range(p.read_text(encoding="utf-8").count(NOTIFY_CHANNEL))]
    assert python_hits == ["notices.py"]

