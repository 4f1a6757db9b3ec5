"""Messages: send, claim (the poll), device reports, recall, expiry, and reading them back."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from .claim_queue import ClaimQueue
from .errors import translate_errors
from .models import Claim, DeliveredMessage, Event, Idempotency, Message, NewMessage, Person
from .people import _person
from .pool import Executor, _BoundedPool
from .send_queue import SendQueue
from .sql import queries

__all__ = [
    "ClaimRequest",
    "ContentSource",
    "DeviceReport",
    "Outgoing",
    "SendOutcome",
    "claim_message_batch",
    "claim_messages",
    "expire_messages",
    "get_message",
    "list_message_events",
    "list_person_messages",
    "list_recipients",
    "recall_message",
    "recipient_of",
    "record_device_events",
    "send_message",
    "send_messages",
]

# A send's content, or a function of the person that makes it (personalization). The function
# runs before the send's one statement, with the person as stored then (a person not yet known
# has only the id or email the send names): whatever it raises stops the send before anything is
# written. It is async so that the caller can render off the event loop.
ContentSource = dict[str, Any] | Callable[[Person], Awaitable[dict[str, Any]]]

# Rounds of `send_messages` for items whose key an overlapping send used: each round's snapshot
# sees the sends committed before it, so the second round answers every such item.
_KEY_RACE_ROUNDS = 3

# Requests per coalesced report statement: each carries at most 100 reports (the routes' limit).
REPORT_REQUESTS = 100


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


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to queue: its content (already rendered), exactly one of the person's id and
    email, and the caller's idempotency key for it."""

    message: NewMessage
    external_id: str | None = None
    email: str | None = None
    idempotency: Idempotency | None = None


def _queued(row: asyncpg.Record) -> Message:
    return Message(
        id=row["id"], external_id=row["external_id"], email=row["email"], state="queued",
        content=row["content"], properties=row["properties"], priority=row["priority"],
        persistent=row["persistent"], campaign=row["campaign"], created_at=row["created_at"],
        expires_at=row["expires_at"], device_id=None, lease_expires_at=None, shown_at=None,
    )


def _earlier(row: asyncpg.Record) -> Message:
    return Message(
        id=row["earlier_id"], external_id=row["earlier_external_id"], email=row["earlier_email"],
        state=row["earlier_state"], content=row["earlier_content"], properties=row["earlier_properties"],
        priority=row["earlier_priority"], persistent=row["earlier_persistent"],
        campaign=row["earlier_campaign"], created_at=row["earlier_created_at"],
        expires_at=row["earlier_expires_at"], device_id=row["earlier_device_id"],
        lease_expires_at=row["earlier_lease_expires_at"], shown_at=row["earlier_shown_at"],
    )


async def _send_round(
    db: Executor, workspace_id: int, items: Sequence[Outgoing], now: datetime | None
) -> list[SendOutcome | None]:
    """One statement for `items`; None where a concurrent send holds the key and is not yet visible."""
    for item in items:
        assert (item.external_id is None) != (item.email is None), "exactly one of external_id and email"
        assert item.message.content is not None, "a template is resolved before the send"
    keys = [i.idempotency for i in items]
    rows = await db.fetch(
        queries["send_messages"], workspace_id,
        [i.external_id for i in items], [i.email.lower() if i.email is not None else None for i in items],
        [i.message.content for i in items], [i.message.properties for i in items],
        [i.message.priority for i in items], [i.message.persistent for i in items],
        [i.message.campaign for i in items], [i.message.expires_at for i in items],
        [i.message.ttl_s for i in items], [k.key if k else None for k in keys],
        [k.digest if k else None for k in keys], [i.message.template_id for i in items], now,
    )
    if rows and not rows[0]["enabled"]:
        return [SendOutcome("disabled", None) for _ in items]
    outcomes: list[SendOutcome | None] = []
    for row, key in zip(rows, keys, strict=True):
        if row["id"] is not None:
            outcomes.append(SendOutcome("queued", _queued(row)))
        elif row["earlier_id"] is None:
            outcomes.append(None)
        elif key is None or row["earlier_hash"] != key.digest:
            outcomes.append(SendOutcome("key_reused", None))
        else:
            outcomes.append(SendOutcome("replayed", _earlier(row)))
    return outcomes


@translate_errors
async def send_messages(
    db: Executor, workspace_id: int, items: Sequence[Outgoing], *, now: datetime | None = None
) -> list[SendOutcome]:
    """Queue these messages in one statement, one outcome per item in order (decision 0022).

    People named but unknown are created. A disabled workspace queues nothing (every outcome is
    `disabled`). An item whose key an earlier send used answers with that send's message as it
    is now (`replayed`), or `key_reused` when that send's body differed. Without `expires_at` a
    message expires `ttl_s` after the database's (or the given) now.
    """
    outcomes: list[SendOutcome | None] = [None] * len(items)
    pending = list(range(len(items)))
    for _ in range(_KEY_RACE_ROUNDS):
        if not pending:
            break
        answered = await _send_round(db, workspace_id, [items[i] for i in pending], now)
        for index, outcome in zip(pending, answered, strict=True):
            outcomes[index] = outcome
        pending = [i for i in pending if outcomes[i] is None]
    if pending:
        raise RuntimeError(f"idempotency keys still unresolved after {_KEY_RACE_ROUNDS} rounds")
    return [outcome for outcome in outcomes if outcome is not None]


@translate_errors
async def list_recipients(
    db: Executor, workspace_id: int, *, external_ids: Sequence[str] = (), emails: Sequence[str] = ()
) -> dict[tuple[str, str], Person]:
    """The known people among these ids and emails, keyed `("id", external_id)` and `("email", email)`,
    with what templates read (one statement, nothing written)."""
    lowered = [e.lower() for e in emails]
    rows = await db.fetch(queries["list_recipients"], workspace_id, list(external_ids), lowered)
    wanted_ids, wanted_emails = set(external_ids), set(lowered)
    found: dict[tuple[str, str], Person] = {}
    for row in rows:
        person = _person(row)
        if person.external_id in wanted_ids:
            found["id", person.external_id] = person
        if person.email in wanted_emails:
            found["email", person.email] = person
    return found


def recipient_of(found: dict[tuple[str, str], Person], external_id: str | None, email: str | None) -> Person:
    """The person a send reaches as stored now, or as the send would create them (id 0, no attributes)."""
    if external_id is not None:
        return found.get(("id", external_id)) or Person(id=0, external_id=external_id, email=None, attributes={})
    assert email is not None
    lowered = email.lower()
    return found.get(("email", lowered)) or Person(id=0, external_id=None, email=lowered, attributes={})


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

    One round trip (`send_messages`); with `render`, one more before it to read the person, and
    the message holds `await render(person)` (attributes included) instead of its content; an
    exception it raises propagates before anything is written. Through a pool of `create_pool`,
    concurrent sends to one workspace share that statement (storage/send_queue.py, decision 0030).
    """
    if render is not None:
        found = await list_recipients(
            pool, workspace_id, external_ids=[external_id] if external_id is not None else [],
            emails=[email] if email is not None else [],
        )
        content = await render(recipient_of(found, external_id, email))
        message = dataclasses.replace(message, content=content)
    item = Outgoing(message, external_id, email, idempotency)
    if isinstance(pool, _BoundedPool):
        return await _send_queue(pool).send(workspace_id, item, now)
    [outcome] = await send_messages(pool, workspace_id, [item], now=now)
    return outcome


def _send_queue(pool: _BoundedPool) -> SendQueue[Outgoing, SendOutcome]:
    queue: SendQueue[Outgoing, SendOutcome] | None = pool.send_queue
    if queue is None:

        async def run(workspace_id: int, items: Sequence[Outgoing], now: datetime | None) -> list[SendOutcome]:
            return await send_messages(pool, workspace_id, items, now=now)

        queue = pool.send_queue = SendQueue(run)
    return queue


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


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One poll's claim: who polls (`user`, or `anonymous_id` for a visitor) on which device, with
    its workspace's lease, the claim limit and the instant (None: the database's clock)."""

    workspace_id: int
    user: str | None
    device_id: str
    lease_s: int
    limit: int = 10
    now: datetime | None = None
    anonymous_id: str | None = None


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
    tier's facts. A visitor polls with `anonymous_id` and no `user`.

    Through a pool of `create_pool`, claims made while another is in flight share one statement
    and one commit (storage/claim_queue.py, decision 0037); a connection or another pool claims alone.
    """
    request = ClaimRequest(workspace_id, user, device_id, lease_s, limit, now, anonymous_id)
    if isinstance(db, _BoundedPool):
        return await _claim_queue(db).claim(request)
    rows = await db.fetch(
        queries["claim_messages"], workspace_id, user, device_id, now, lease_s, limit, anonymous_id
    )
    return _claim(rows)


# A batch that deadlocked runs again this many times before its callers get the 503: its lock
# order (person by person) leaves a deadlock only where two processes resolved a person differently.
DEADLOCK_RETRIES = 2


@translate_errors
async def claim_message_batch(db: Executor, requests: Sequence[ClaimRequest]) -> list[Claim]:
    """Many polls' claims in one statement and one commit, one `Claim` per request in order: each
    exactly what `claim_messages` alone would have returned at that point (decision 0037)."""
    if not requests:
        return []
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            rows = await db.fetch(
                queries["claim_message_batch"],
                [r.workspace_id for r in requests], [r.user for r in requests],
                [r.device_id for r in requests], [r.now for r in requests],
                [r.lease_s for r in requests], [r.limit for r in requests],
                [r.anonymous_id for r in requests],
            )
            break
        except asyncpg.exceptions.DeadlockDetectedError:
            if attempt == DEADLOCK_RETRIES:
                raise
    by_item: list[list[asyncpg.Record]] = [[] for _ in requests]
    for row in sorted(rows, key=lambda r: (r["item"], r["n"])):
        by_item[row["item"] - 1].append(row)
    return [_claim(item_rows) for item_rows in by_item]


def _claim_queue(pool: _BoundedPool) -> ClaimQueue[ClaimRequest, Claim]:
    queue: ClaimQueue[ClaimRequest, Claim] | None = pool.claim_queue
    if queue is None:

        async def run(requests: Sequence[ClaimRequest]) -> list[Claim]:
            return await claim_message_batch(pool, requests)

        queue = pool.claim_queue = ClaimQueue(run)
    return queue


def _claim(rows: Sequence[asyncpg.Record]) -> Claim:
    """One poll's rows (the facts on each, a message on each but an empty claim's one row) as a `Claim`."""
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
        pending_elsewhere=bool(first["pending_elsewhere"]),
    )


@dataclass(frozen=True, slots=True)
class DeviceReport:
    message_id: uuid.UUID
    type: Literal["shown", "action", "dismissed"]
    action: str | None = None


@dataclass(frozen=True, slots=True)
class _ReportRequest:
    """One request's reports (a poll's or a `/v1/events`), as a report statement carries it."""

    user: str | None
    device_id: str
    anonymous_id: str | None
    platform: str
    reports: Sequence[DeviceReport]


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

    `platform` (web, ios, android, other) is recorded with the workspace's first `shown`. Through
    a pool of `create_pool`, the reports of requests that arrive while a report statement of the
    workspace is in flight go together as the next statement: one commit for many devices
    (decision 0038), each caller answered as if alone.
    """
    if not reports:
        return []
    request = _ReportRequest(user, device_id, anonymous_id, platform, reports)
    if isinstance(pool, _BoundedPool):
        return await _report_queue(pool).send(workspace_id, request, now)
    [results] = await _record_requests(pool, workspace_id, [request], now)
    return results


@translate_errors
async def _record_requests(
    db: Executor, workspace_id: int, requests: Sequence[_ReportRequest], now: datetime | None
) -> list[list[str | None]]:
    """One `record_device_events` statement for these requests' reports; each request's results, in order."""
    reports = [(g, r) for g, q in enumerate(requests, start=1) for r in q.reports]
    rows = await db.fetch(
        queries["record_device_events"],
        workspace_id, [r.message_id for _, r in reports], [r.type for _, r in reports],
        [r.action for _, r in reports], [g for g, _ in reports],
        [q.device_id for q in requests], [q.user for q in requests], [q.anonymous_id for q in requests],
        [q.platform for q in requests], now,
    )
    codes = iter(
        None if row["accepted"] else ("not_offered_to_device" if row["known"] else "unknown_message")
        for row in rows
    )
    return [[next(codes) for _ in q.reports] for q in requests]


def _report_queue(pool: _BoundedPool) -> SendQueue[_ReportRequest, list[str | None]]:
    queue: SendQueue[_ReportRequest, list[str | None]] | None = pool.report_queue
    if queue is None:

        async def run(
            workspace_id: int, requests: Sequence[_ReportRequest], now: datetime | None
        ) -> list[list[str | None]]:
            return await _record_requests(pool, workspace_id, requests, now)

        queue = pool.report_queue = SendQueue(run, max_items=REPORT_REQUESTS)
    return queue


@translate_errors
async def expire_messages(db: Executor, *, batch: int = 1000, now: datetime | None = None) -> int:
    """Record one batch of overdue messages as expired; returns how many."""
    count: int = await db.fetchval(queries["expire_messages"], now, batch)
    return count
