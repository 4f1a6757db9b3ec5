"""The wake-up protocol end to end: what each notifying statement sends parses into the expected notice.

The SQL side (the mailslot_notify_*_v1 functions of migration 0006) builds every payload; the
Python side (storage/notices.py) names the channel and parses. Each test LISTENs on the Python
constant, calls a storage function, and checks the one notice it caused, then that nothing else
came: a sentinel sent afterwards must be the next payload (NOTIFY delivers in commit order).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import pytest

import storage
from storage.notices import NOTIFY_CHANNEL, BroadcastNotice, Notice, QueueNotice, WorkspaceNotice, parse_notice
from storage.sql import queries

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WAIT_S = 5.0
SENTINEL = "nothing-else"

# Every statement that wakes polls, each exercised below; the last test keeps this list whole.
NOTIFYING_STATEMENTS = (
    "send_messages",
    "queue_broadcast",
    "queue_rendered_broadcast",
    "open_visit_broadcast",
    "resend_broadcast",
    "update_workspace",
    "rotate_api_key",
    "rotate_identity_secret",
    "notify_queue",
    "queue_triggered_messages",
    "notify_barrier",
)

T = TypeVar("T")


class Heard:
    """The payloads one LISTEN connection received, waited for with a timeout."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.payloads: asyncio.Queue[str] = asyncio.Queue()

    def on_payload(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.payloads.put_nowait(payload)

    async def clock(self) -> float:
        """The database's clock, the one `at` is read from, in seconds since the epoch."""
        value: float = await self.conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
        return value

    async def caused_by(self, action: Awaitable[T]) -> tuple[T, Notice]:
        """Run `action`; return its result and the one notice it caused, checking its `at`."""
        before = await self.clock()
        result = await action
        after = await self.clock()
        payload = await asyncio.wait_for(self.payloads.get(), WAIT_S)
        notice = parse_notice(payload)
        assert notice is not None, payload
        if not isinstance(notice, WorkspaceNotice):
            assert notice.at is not None and before <= notice.at <= after, (before, notice, after)
        await self.nothing_else()
        return result, notice

    async def nothing_else(self) -> None:
        await self.conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, SENTINEL)
        assert await asyncio.wait_for(self.payloads.get(), WAIT_S) == SENTINEL


@pytest.fixture
async def heard(database_url: str) -> AsyncIterator[Heard]:
    conn = await asyncpg.connect(database_url)
    heard = Heard(conn)
    await conn.add_listener(NOTIFY_CHANNEL, heard.on_payload)
    try:
        yield heard
    finally:
        await conn.close()


@pytest.fixture
async def workspace(pool: asyncpg.Pool) -> int:
    return (await storage.create_workspace(pool, "acme")).workspace.id


def without_at(notice: Notice) -> Notice:
    return notice if isinstance(notice, WorkspaceNotice) else dataclasses.replace(notice, at=None)


async def send(pool: asyncpg.Pool, workspace: int, **to: Any) -> storage.SendOutcome:
    fields: dict[str, Any] = {"external_id": None, "email": None, **to}
    message = storage.NewMessage({"title": "Hi"}, ttl_s=3600)
    return await storage.send_message(pool, workspace, message, now=NOW, **fields)


async def person_id(pool: asyncpg.Pool, workspace: int, user: str) -> int:
    person = await storage.get_person(pool, workspace, user)
    assert person is not None
    return person.id


async def broadcast(pool: asyncpg.Pool, workspace: int, **fields: Any) -> storage.BroadcastOutcome:
    return await storage.send_broadcast(
        pool, workspace, storage.Audience(ids=("ada", "bob")), storage.NewMessage({"title": "News"}, ttl_s=3600),
        now=NOW, **fields,
    )


# --- send_message -------------------------------------------------------------------------------


async def test_a_send_by_id_names_the_person_by_id(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    outcome, notice = await heard.caused_by(send(pool, workspace, external_id="ada"))

    assert outcome.status == "queued"
    assert without_at(notice) == QueueNotice(workspace, await person_id(pool, workspace, "ada"), ("ada",), None)


async def test_a_send_by_email_names_the_person_by_email(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    _, notice = await heard.caused_by(send(pool, workspace, email="Ada@Example.com"))

    person = await person_id(pool, workspace, "ada@example.com")
    assert without_at(notice) == QueueNotice(workspace, person, ("ada@example.com",), None)


async def test_a_send_names_both_keys_of_a_person_who_has_both(
    pool: asyncpg.Pool, workspace: int, heard: Heard
) -> None:
    # Linking an email nobody had moves nothing, but it still names both keys: a poll by the email
    # now reaches ada's queue, so what any process remembered about that email is stale.
    _, linked = await heard.caused_by(
        storage.identify_person(pool, workspace, "ada", {}, email="ada@example.com", set_email=True)
    )
    await heard.nothing_else()

    _, notice = await heard.caused_by(send(pool, workspace, email="ada@example.com"))

    person = await person_id(pool, workspace, "ada")
    assert without_at(linked) == QueueNotice(workspace, person, ("ada", "ada@example.com"), None)
    assert without_at(notice) == QueueNotice(workspace, person, ("ada", "ada@example.com"), None)


async def test_a_send_to_a_disabled_workspace_wakes_no_one(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    await heard.caused_by(storage.update_workspace(pool, workspace, in_app_enabled=False))

    assert (await send(pool, workspace, external_id="ada")).status == "disabled"
    await heard.nothing_else()


# --- identify linking an email (notify_queue) ---------------------------------------------------


async def test_identify_that_takes_over_an_emails_messages_wakes_both_keys(
    pool: asyncpg.Pool, workspace: int, heard: Heard
) -> None:
    await heard.caused_by(send(pool, workspace, email="ada@example.com"))

    person, notice = await heard.caused_by(
        storage.identify_person(pool, workspace, "ada", {}, email="ada@example.com", set_email=True)
    )

    assert (person.external_id, person.email) == ("ada", "ada@example.com")
    assert without_at(notice) == QueueNotice(workspace, person.id, ("ada", "ada@example.com"), None)


# --- broadcasts ---------------------------------------------------------------------------------


async def test_a_broadcast_wakes_its_workspace_once(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    outcome, notice = await heard.caused_by(broadcast(pool, workspace))

    assert outcome.broadcast is not None and outcome.broadcast.queued == 2
    assert without_at(notice) == BroadcastNotice(workspace, None)


async def test_a_personalized_broadcast_wakes_its_workspace_once(
    pool: asyncpg.Pool, workspace: int, heard: Heard
) -> None:
    async def render(members: list[storage.AudienceMember]) -> list[dict[str, Any]]:
        return [{"title": f"News for {member.external_id}"} for member in members]

    outcome, notice = await heard.caused_by(broadcast(pool, workspace, render=render))

    assert outcome.broadcast is not None and outcome.broadcast.queued == 2
    assert without_at(notice) == BroadcastNotice(workspace, None)


async def test_a_resent_broadcast_wakes_its_workspace_once(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    sent, _ = await heard.caused_by(broadcast(pool, workspace))
    assert sent.broadcast is not None

    outcome, notice = await heard.caused_by(storage.resend_broadcast(pool, workspace, sent.broadcast.id, now=NOW))

    assert outcome.status == "resent"
    assert without_at(notice) == BroadcastNotice(workspace, None)


async def test_a_broadcast_to_no_one_wakes_no_one(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    outcome = await storage.send_broadcast(
        pool, workspace, storage.Audience(everyone=True), storage.NewMessage({"title": "News"}, ttl_s=3600), now=NOW
    )

    assert outcome.broadcast is not None and outcome.broadcast.queued == 0
    await heard.nothing_else()


async def test_a_visit_broadcast_wakes_the_whole_workspace(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    """Nothing is queued, but every visitor's and person's held poll must claim to enter it."""
    rule = storage.VisitRule(ends_at=datetime(2026, 12, 28, tzinfo=UTC))
    outcome, notice = await heard.caused_by(storage.send_broadcast(
        pool, workspace, storage.Audience(visit=rule), storage.NewMessage({"title": "Hi"}, ttl_s=3600), now=NOW,
    ))

    assert outcome.broadcast is not None and outcome.broadcast.queued == 0
    assert without_at(notice) == BroadcastNotice(workspace, None)


# --- workspace settings -------------------------------------------------------------------------


async def test_a_settings_change_tells_every_process(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    _, notice = await heard.caused_by(storage.update_workspace(pool, workspace, lease_s=120))

    assert notice == WorkspaceNotice(workspace)


async def test_a_rotation_tells_every_process(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    """Every process's cache must drop the workspace, so that a rotated-out credential learns its end."""
    _, notice = await heard.caused_by(storage.rotate_api_key(pool, workspace, 60, NOW))
    assert notice == WorkspaceNotice(workspace)
    rotated, notice = await heard.caused_by(storage.rotate_identity_secret(pool, workspace, 60, NOW))
    assert notice == WorkspaceNotice(workspace)
    assert [s.expires_at is None for s in rotated.identity_secrets] == [True, False]


# --- triggered messages -------------------------------------------------------------------------


async def test_a_triggered_message_wakes_the_person(pool: asyncpg.Pool, workspace: int, heard: Heard) -> None:
    trigger = await storage.create_trigger(
        pool, workspace, event="upgraded", filter=None, message={"content": {"title": "Thanks"}},
        reentry="every_time",
    )
    assert trigger is not None

    async def render(person: storage.Person, matched: storage.MatchedTrigger) -> storage.TriggeredMessage:
        return storage.TriggeredMessage(
            trigger_id=matched.id, once=False, message=storage.NewMessage(matched.message["content"], ttl_s=3600)
        )

    outcome, notice = await heard.caused_by(storage.record_person_event(
        pool, workspace, "ada", match_email=False, name="upgraded", data={}, source="server", render=render, now=NOW,
    ))

    assert len(outcome.queued) == 1
    assert without_at(notice) == QueueNotice(workspace, outcome.person.id, ("ada",), None)


# --- the commit-order barrier (notify_barrier) ---------------------------------------------------


async def test_a_barrier_marker_reaches_only_its_channel_after_every_notice_committed_before_it(
    pool: asyncpg.Pool, workspace: int, database_url: str, heard: Heard
) -> None:
    channel = storage.barrier_channel()
    conn = await asyncpg.connect(database_url)
    order: list[str] = []
    marker_heard = asyncio.Event()

    def on_queue(_c: object, _p: int, _ch: str, payload: str) -> None:
        order.append("notice")

    def on_marker(_c: object, _p: int, _ch: str, payload: str) -> None:
        order.append(payload)
        marker_heard.set()

    try:
        await conn.add_listener(storage.NOTIFY_CHANNEL, on_queue)
        await conn.add_listener(channel, on_marker)
        await send(pool, workspace, external_id="ada")
        await storage.notify_barrier(pool, channel, "7")
        await asyncio.wait_for(marker_heard.wait(), WAIT_S)
    finally:
        await conn.close()
    assert order == ["notice", "7"]
    # The shared channel carries the send's notice, never the marker.
    payload = await asyncio.wait_for(heard.payloads.get(), WAIT_S)
    assert parse_notice(payload) is not None
    await heard.nothing_else()


# --- the list above is every notifying statement ------------------------------------------------


def test_every_notifying_statement_is_exercised_here() -> None:
    """A new statement that wakes polls calls a mailslot_notify_*_v1 function and joins this file."""
    notifying = {name for name, text in queries.items() if re.search(r"\bmailslot_notify_\w+_v\d+\(", text)}
    assert notifying == set(NOTIFYING_STATEMENTS)
