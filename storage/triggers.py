"""Event triggers: their definitions, the events people do, and the messages a matching event queues.

Rules: an event is recorded and its triggers matched in one statement (filters are jsonpath
predicates stored with each trigger); the caller renders each matched trigger's message; one more
statement queues them all, in the same transaction. "Once per person" rests on
`trigger_deliveries`' primary key: the delivery row and the message are written by one statement,
so of concurrent events exactly one queues the message.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from .errors import translate_errors
from .models import NewMessage, Person
from .pool import Executor
from .sql import queries

__all__ = [
    "EventOutcome",
    "MatchedTrigger",
    "Trigger",
    "TriggeredMessage",
    "create_trigger",
    "disable_trigger",
    "list_triggers",
    "record_person_event",
]


@dataclass(frozen=True, slots=True)
class Trigger:
    """`filter` is `{"source", "path", "vars"}` (the filter as given and its jsonpath), or None."""

    id: uuid.UUID
    event: str
    filter: dict[str, Any] | None
    message: dict[str, Any]
    reentry: str
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MatchedTrigger:
    """A trigger an event matched; with a template, the template's content and properties."""

    id: uuid.UUID
    reentry: str
    message: dict[str, Any]
    template_content: dict[str, Any] | None
    template_properties: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class TriggeredMessage:
    """A rendered message of a matched trigger, ready to queue; it expires `ttl_s` after it is queued."""

    trigger_id: uuid.UUID
    once: bool
    message: NewMessage


# Renders one matched trigger for the person; None skips it (the renderer records why). Async,
# so that the caller can render off the event loop.
Render = Callable[[Person, MatchedTrigger], Awaitable[TriggeredMessage | None]]


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """`enabled` is false when the workspace's in-app messaging is off: nothing was queued."""

    person: Person
    matched: int
    queued: tuple[uuid.UUID, ...]
    enabled: bool


def _trigger(row: asyncpg.Record) -> Trigger:
    return Trigger(
        id=row["id"], event=row["event"], filter=row["filter"], message=row["message"],
        reentry=row["reentry"], enabled=row["enabled"], created_at=row["created_at"],
    )


@translate_errors
async def create_trigger(
    db: Executor,
    workspace_id: int,
    *,
    event: str,
    filter: dict[str, Any] | None,
    message: dict[str, Any],
    reentry: Literal["every_time", "once"],
    template_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Trigger | None:
    """The new trigger; None when `template_id` names no template of the workspace."""
    row = await db.fetchrow(
        queries["create_trigger"], workspace_id, event, filter, message, reentry, template_id, now
    )
    return _trigger(row) if row else None


@translate_errors
async def list_triggers(db: Executor, workspace_id: int) -> list[Trigger]:
    rows = await db.fetch(queries["list_triggers"], workspace_id)
    return [_trigger(r) for r in rows]


@translate_errors
async def disable_trigger(db: Executor, workspace_id: int, trigger_id: uuid.UUID) -> Trigger | None:
    """The trigger, now disabled (disabling twice is harmless); None when unknown."""
    row = await db.fetchrow(queries["disable_trigger"], workspace_id, trigger_id)
    return _trigger(row) if row else None


def _wanted(message_id: uuid.UUID, message: TriggeredMessage) -> dict[str, Any]:
    # str(): ids read from the database are asyncpg's own UUID type, which orjson cannot write.
    new = message.message
    template_id = str(new.template_id) if new.template_id is not None else None
    return {
        "message_id": str(message_id), "trigger_id": str(message.trigger_id), "template_id": template_id,
        "once": message.once, "content": new.content, "properties": new.properties,
        "priority": new.priority, "persistent": new.persistent, "campaign": new.campaign,
        "ttl_s": new.ttl_s,
    }


@translate_errors
async def record_person_event(
    pool: asyncpg.Pool,
    workspace_id: int,
    user: str,
    *,
    match_email: bool,
    name: str,
    data: dict[str, Any],
    source: Literal["server", "device"],
    render: Render,
    now: datetime | None = None,
    create_by_email: bool = False,
) -> EventOutcome:
    """Record an event of the person `user` names and queue the messages of the triggers it matches.

    `user` is the person's id (created if new) or, with `match_email`, their id or email as a
    device names them; with `create_by_email`, a new person is known by `user` as their email.
    `render` runs inside the transaction, once per matched trigger.
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            queries["record_person_event"], workspace_id, user, match_email, name, data, source, now,
            create_by_email,
        )
        first = rows[0]
        person = Person(
            id=first["person_id"], external_id=first["external_id"], email=first["email"],
            attributes=first["attributes"], readable_attributes=first["readable_attributes"],
        )
        matched = [
            MatchedTrigger(
                id=r["trigger_id"], reentry=r["reentry"], message=r["message"],
                template_content=r["template_content"], template_properties=r["template_properties"],
            )
            for r in rows
            if r["trigger_id"] is not None
        ]
        rendered = [m for m in [await render(person, t) for t in matched] if m is not None]
        if not rendered:
            return EventOutcome(person, len(matched), (), True)
        wanted = [_wanted(uuid.uuid4(), m) for m in rendered]
        result = await conn.fetchrow(queries["queue_triggered_messages"], workspace_id, person.id, wanted, now)
    return EventOutcome(person, len(matched), tuple(result["queued"]), result["enabled"])
