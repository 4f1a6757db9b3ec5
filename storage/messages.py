"""Messages: send, claim (the poll), device reports, recall, expiry, and reading them back."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from .errors import RefusedWrite, translate_errors
from .models import Claim, DeliveredMessage, Event, Idempotency, Message, NewMessage, Person
from .people import ensure_person
from .pool import Executor
from .sql import queries

__all__ = [
    "ContentSource",
    "DeviceReport",
    "SendOutcome",
    "claim_messages",
    "expire_messages",
    "get_message",
    "list_message_events",
    "list_person_messages",
    "recall_message",
    "record_device_events",
    "send_message",
]

# A send's content, or a function of the person that makes it (personalization). The function
# runs inside the send's transaction, after the person is resolved: whatever it raises rolls the
# send back, so a refused render leaves neither a message nor a new person behind. It is async
# so that the caller can render off the event loop.
ContentSource = dict[str, Any] | Callable[[Person], Awaitable[dict[str, Any]]]


def _message(row: asyncpg.Record) -> Message:
    return Message(
        id=row["id"],
        external_id=row["external_id"],
        email=row["email"],
        state=row["state"],
        content=row["content"],
        properties=row["properties"],
        priority=row["priority"],
        persistent=row["persistent"],
        campaign=row["campaign"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        device_id=row["device_id"],
        lease_expires_at=row["lease_expires_at"],
        shown_at=row["shown_at"],
    )


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """`queued`: new message; `replayed`: the key's first message; `disabled`/`key_reused`: nothing queued."""

    status: Literal["queued", "replayed", "disabled", "key_reused"]
    message: Message | None


async def _insert_message(
    conn: asyncpg.Connection,
    workspace_id: int,
    external_id: str | None,
    email: str | None,
    message: NewMessage,
    render: Callable[[Person], Awaitable[dict[str, Any]]] | None,
    idempotency: Idempotency | None,
    now: datetime | None,
) -> tuple[asyncpg.Record, Person]:
    person = await ensure_person(conn, workspace_id, external_id=external_id, email=email)
    content = await render(person) if render is not None else message.content
    row: asyncpg.Record = await conn.fetchrow(
        queries["send_message"],
        workspace_id, person.id, content, message.properties, message.priority, message.persistent,
        message.campaign, message.expires_at, idempotency.key if idempotency else None,
        idempotency.digest if idempotency else None, now, message.ttl_s, message.template_id,
    )
    if not row["enabled"]:
        raise RefusedWrite
    return row, person


@translate_errors
async def send_message(
    pool: asyncpg.Pool,
    workspace_id: int,
    message: NewMessage,
    *,
    external_id: str | None = None,
    email: str | None = None,
    render: Callable[[Person], Awaitable[dict[str, Any]]] | None = None,
    idempotency: Idempotency | None = None,
    now: datetime | None = None,
) -> SendOutcome:
    """Queue a message for the person with this id or email, creating the person if new.

    Without `expires_at` the message expires `ttl_s` after the database's (or the given) now.
    With `render`, the message holds `await render(person)` (attributes included) instead of its
    content; an exception it raises propagates after the transaction rolled back.
    """
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                row, person = await _insert_message(
                    conn, workspace_id, external_id, email, message, render, idempotency, now
                )
        except RefusedWrite:
            return SendOutcome("disabled", None)
        if row["id"] is not None:
            return SendOutcome("queued", Message(
                id=row["id"], external_id=person.external_id, email=person.email, state="queued",
                content=row["content"], properties=row["properties"], priority=row["priority"],
                persistent=row["persistent"], campaign=row["campaign"], created_at=row["created_at"],
                expires_at=row["expires_at"], device_id=None, lease_expires_at=None, shown_at=None,
            ))
        # The idempotency key was used before: answer with that send's message as it is now.
        assert idempotency is not None  # only a key can make the insert do nothing
        earlier = await conn.fetchrow(queries["get_message_id_by_idempotency_key"], workspace_id, idempotency.key)
        if earlier["idempotency_hash"] != idempotency.digest:
            return SendOutcome("key_reused", None)
        message = await conn.fetchrow(queries["get_message"], workspace_id, earlier["id"], now)
    return SendOutcome("replayed", _message(message))


@translate_errors
async def get_message(
    db: Executor, workspace_id: int, message_id: uuid.UUID, now: datetime | None = None
) -> Message | None:
    row = await db.fetchrow(queries["get_message"], workspace_id, message_id, now)
    return _message(row) if row else None


@translate_errors
async def list_message_events(db: Executor, message_id: uuid.UUID) -> list[Event]:
    rows = await db.fetch(queries["list_message_events"], message_id)
    return [Event(type=r["type"], at=r["at"], device_id=r["device_id"], action=r["action"]) for r in rows]


@translate_errors
async def list_person_messages(
    db: Executor, person_id: int, limit: int = 100, now: datetime | None = None
) -> list[Message]:
    rows = await db.fetch(queries["list_person_messages"], person_id, limit, now)
    return [_message(r) for r in rows]


@translate_errors
async def recall_message(
    db: Executor, workspace_id: int, message_id: uuid.UUID, now: datetime | None = None
) -> str | None:
    """Recall if queued or offered; returns the state the message had, None if unknown."""
    state: str | None = await db.fetchval(queries["recall_message"], workspace_id, message_id, now)
    return state


@translate_errors
async def claim_messages(
    db: Executor,
    workspace_id: int,
    user: str | None,
    device_id: str,
    *,
    lease_s: int,
    limit: int = 10,
    now: datetime | None = None,
    anonymous_id: str | None = None,
) -> Claim:
    """The poll's single round trip: claim, lease, enter due visit broadcasts, record, and read the
    tier's facts. A visitor polls with `anonymous_id` and no `user`."""
    rows = await db.fetch(
        queries["claim_messages"], workspace_id, user, device_id, now, lease_s, limit, anonymous_id
    )
    first = rows[0]
    messages = tuple(
        DeliveredMessage(
            id=r["id"],
            content=r["content"],
            properties=r["properties"],
            priority=r["priority"],
            persistent=r["persistent"],
            expires_at=r["expires_at"],
            campaign=r["campaign"],
            offered=r["offered"],
            lease_expires_at=r["lease_expires_at"],
        )
        for r in rows
        if r["id"] is not None
    )
    return Claim(
        now=first["now"],
        person_id=first["person_id"],
        last_message_at=first["last_message_at"],
        messages=messages,
        pending=bool(first["pending"]),
        showing=bool(first["showing"]),
        visiting=bool(first["visiting"]),
    )


@dataclass(frozen=True, slots=True)
class DeviceReport:
    message_id: uuid.UUID
    type: Literal["shown", "action", "dismissed"]
    action: str | None = None


@translate_errors
async def record_device_events(
    pool: asyncpg.Pool,
    workspace_id: int,
    user: str | None,
    device_id: str,
    reports: list[DeviceReport],
    now: datetime | None = None,
    platform: str = "other",
    anonymous_id: str | None = None,
) -> list[str | None]:
    """Apply reports in order, in one statement; per report None (accepted) or why it was rejected.

    `platform` (web, ios, android, other) is recorded with the workspace's first `shown`.
    """
    rows = await pool.fetch(
        queries["record_device_events"],
        workspace_id, [r.message_id for r in reports], device_id, user, [r.type for r in reports],
        [r.action for r in reports], now, platform, anonymous_id,
    )
    return [
        None if row["accepted"] else ("not_offered_to_device" if row["known"] else "unknown_message")
        for row in rows
    ]


@translate_errors
async def expire_messages(db: Executor, *, batch: int = 1000, now: datetime | None = None) -> int:
    """Record one batch of overdue messages as expired; returns how many."""
    count: int = await db.fetchval(queries["expire_messages"], now, batch)
    return count
