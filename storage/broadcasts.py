"""Broadcasts: one send queued for a whole audience with a constant number of statements.

Rules: however large the audience, a send, a resend or a recall makes the same few round trips
(a plain broadcast: one more per chunk of up to half a million people).
Plain content: the send records the broadcast and splits its audience into chunks of people by
id in one transaction, then each chunk is queued by one INSERT ... SELECT that commits and wakes
the workspace on its own, on up to `FAN_OUT_CONNECTIONS` connections at once (decision 0031).
Personalized content is read with the audience in one query, rendered by the caller's `render`
for everyone first (so a template error queues nothing), then inserted from arrays by one
statement.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from .errors import RefusedWrite, translate_errors
from .models import Idempotency, NewMessage
from .pool import Executor
from .sql import queries

__all__ = [
    "Audience",
    "AudienceFilter",
    "AudienceMember",
    "Broadcast",
    "BroadcastOutcome",
    "RecallOutcome",
    "RenderMany",
    "ResendOutcome",
    "VisitRule",
    "get_broadcast",
    "import_people",
    "recall_broadcast",
    "resend_broadcast",
    "send_broadcast",
]

# The keys of `Broadcast.counts`: the six states (which add up to `total`) and `action`.
COUNT_KEYS = ("queued", "offered", "shown", "action", "dismissed", "expired", "recalled")
# People per call of `render`: the caller renders each chunk off the event loop, in one hand-off.
_RENDER_CHUNK = 500

# A million-person audience takes tens of seconds on a small host: more than the pool's
# per-statement limit, which is sized for polls.
BULK_TIMEOUT_S = 600.0
# Broadcasts at least this large refresh the planner's statistics right away.
ANALYZE_AFTER = 50_000
# The first chunk is small, so that its people have their copy (and are woken) within a moment.
FIRST_CHUNK = 10_000
# The rest is queued on this many connections at once (one core each), in chunks of at most
# `LARGEST_CHUNK` people: every chunk wakes the workspace's held polls once.
FAN_OUT_CONNECTIONS = 2
LARGEST_CHUNK = 500_000
# How long a send waits for a second connection before queueing every chunk on its own.
HELPER_ACQUIRE_S = 0.5
# How long a broadcast waits for its own connection. Longer than the pool's fail-fast default:
# a broadcast is a backend's bulk request that runs for seconds anyway, and a burst of device
# claims (the parked polls of a large workspace after a restart) must not turn it into a 503.
BROADCAST_ACQUIRE_S = 15.0


@dataclass(frozen=True, slots=True)
class AudienceFilter:
    """An attribute filter compiled to a jsonpath predicate with its variables; `spec` is what was asked."""

    path: str
    vars: dict[str, Any]
    spec: Any


@dataclass(frozen=True, slots=True)
class VisitRule:
    """A broadcast to everyone who visits: each person (an anonymous visitor, or a person by id or
    email) gets a copy when they poll, until `ends_at`, once or at most once every `every_s`."""

    ends_at: datetime
    every_s: int | None = None

    def as_json(self) -> dict[str, Any]:
        frequency: Any = "once" if self.every_s is None else {"every_hours": self.every_s // 3600}
        # In UTC with a Z, as the API writes every time.
        ends_at = self.ends_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {"visitors": True, "frequency": frequency, "ends_at": ends_at}


@dataclass(frozen=True, slots=True)
class Audience:
    """Exactly one of: these external ids, these emails, everyone in the workspace, a filter, or
    everyone who visits (`visit`)."""

    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    everyone: bool = False
    filter: AudienceFilter | None = None
    visit: VisitRule | None = None

    def as_json(self) -> dict[str, Any]:
        if self.visit is not None:
            return self.visit.as_json()
        if self.everyone:
            return {"all": True}
        if self.filter is not None:
            return {"filter": self.filter.spec}
        if self.emails:
            return {"emails": len(self.emails)}
        return {"ids": len(self.ids)}


@dataclass(frozen=True, slots=True)
class AudienceMember:
    """A person of a personalized broadcast, as its templates see them (`attributes`: the backend's,
    over the device's the workspace lists)."""

    id: int
    external_id: str | None
    email: str | None
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A broadcast with live counts; `queued` is how many entries its latest send (or resend) queued."""

    id: uuid.UUID
    status: str
    audience: dict[str, Any]
    queued: int
    sends: int
    campaign: str | None
    created_at: datetime
    last_sent_at: datetime
    recalled_at: datetime | None
    total: int
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BroadcastOutcome:
    status: Literal["queued", "replayed", "disabled", "key_reused"]
    broadcast: Broadcast | None


@dataclass(frozen=True, slots=True)
class ResendOutcome:
    """`resent`, or why nothing was queued: `unknown`, `recalled`, `disabled`, `expired` (its expires_at passed)."""

    status: Literal["resent", "unknown", "recalled", "disabled", "expired"]
    broadcast: Broadcast | None


@dataclass(frozen=True, slots=True)
class RecallOutcome:
    """The broadcast after the recall (None: unknown) and how many entries this recall took back."""

    broadcast: Broadcast | None
    recalled: int


def _broadcast(row: asyncpg.Record) -> Broadcast:
    return Broadcast(
        id=row["id"], status=row["status"], audience=row["audience"], queued=row["queued"], sends=row["sends"],
        campaign=row["campaign"], created_at=row["created_at"], last_sent_at=row["last_sent_at"],
        recalled_at=row["recalled_at"], total=row["total"],
        counts={key: row["n_" + key] for key in COUNT_KEYS},
    )


# Renders a chunk of the audience, one content per person in order.
RenderMany = Callable[[list[AudienceMember]], Awaitable[list[dict[str, Any]]]]


async def _render_all(rows: list[asyncpg.Record], render: RenderMany) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    for start in range(0, len(rows), _RENDER_CHUNK):
        contents.extend(await render([
            AudienceMember(r["id"], r["external_id"], r["email"], r["attributes"])
            for r in rows[start:start + _RENDER_CHUNK]
        ]))
    return contents


@translate_errors
async def send_broadcast(
    pool: asyncpg.Pool,
    workspace_id: int,
    audience: Audience,
    message: NewMessage,
    *,
    render: RenderMany | None = None,
    idempotency: Idempotency | None = None,
    now: datetime | None = None,
) -> BroadcastOutcome:
    """Queue one message per person of the audience (people named but unknown are created).

    A visit audience queues nothing now: each visiting person's poll makes their copy (the claim
    statement), so the send only records the rule and wakes the workspace's held polls.
    Plain content is queued chunk by chunk, each claimable as it commits; a replay of the send
    (same idempotency key) queues the chunks an interrupted send left.
    With `render`, each person's message holds what `render` made for them (it gets the audience
    in chunks) instead of the content, all in one transaction; an exception from `render` rolls
    everything back and propagates.
    """
    idempotency_key = idempotency.key if idempotency else None
    idempotency_hash = idempotency.digest if idempotency else None
    emails = [e.lower() for e in audience.emails]
    ids = list(audience.ids)
    path = audience.filter.path if audience.filter else None
    variables = audience.filter.vars if audience.filter else None
    chunked = audience.visit is None and render is None
    replayed = False
    async with pool.acquire(timeout=BROADCAST_ACQUIRE_S) as conn:
        try:
            async with conn.transaction():
                broadcast_id = await conn.fetchval(
                    queries["create_broadcast"], workspace_id, audience.as_json(), message.content,
                    message.properties, message.priority, message.persistent, message.campaign,
                    message.expires_at, message.ttl_s, idempotency_key, idempotency_hash, now,
                    audience.visit.ends_at if audience.visit else None,
                    audience.visit.every_s if audience.visit else None,
                )
                if broadcast_id is None:
                    broadcast_id = await conn.fetchval(
                        queries["get_broadcast_id_by_idempotency_key"], workspace_id, idempotency_key
                    )
                    row = await conn.fetchrow(queries["get_broadcast"], workspace_id, broadcast_id, now)
                    if row["idempotency_hash"] != idempotency_hash:
                        return BroadcastOutcome("key_reused", None)
                    replayed = True
                    result = None
                else:
                    if ids or emails:
                        await conn.execute(queries["ensure_people"], workspace_id, ids, emails)
                    if audience.visit is not None:
                        result = await conn.fetchrow(queries["open_visit_broadcast"], workspace_id)
                    elif render is None:
                        result = await conn.fetchrow(
                            queries["plan_broadcast"], workspace_id, broadcast_id, ids, emails,
                            audience.everyone or audience.filter is not None, FIRST_CHUNK, FAN_OUT_CONNECTIONS,
                            LARGEST_CHUNK, timeout=BULK_TIMEOUT_S,
                        )
                    else:
                        people = await conn.fetch(
                            queries["list_broadcast_audience"], workspace_id, ids, emails, audience.everyone,
                            path, variables,
                        )
                        contents = await _render_all(people, render)
                        result = await conn.fetchrow(
                            queries["queue_rendered_broadcast"], workspace_id, broadcast_id,
                            [p["id"] for p in people], contents, now, timeout=BULK_TIMEOUT_S,
                        )
                    if not result["enabled"]:
                        raise RefusedWrite
        except RefusedWrite:
            return BroadcastOutcome("disabled", None)
        if chunked:
            # The plan is committed; its chunks are queued on this connection and, if the pool
            # has one free, another (a replay finds none left, unless its send was interrupted).
            planned = (result["chunks"], result["people"]) if result is not None else None
            enabled = await _fan_out(conn, pool, workspace_id, broadcast_id, audience, now, planned)
            if not enabled and not replayed:
                return BroadcastOutcome("disabled", None)
        elif result is not None and (result["queued"] or 0) >= ANALYZE_AFTER:
            # Until autovacuum gets to them, a million new rows make the planner's statistics
            # wrong and every claim slow (200 ms instead of 0.5 ms, bench scenario 4).
            await conn.execute(queries["analyze_queue"], timeout=BULK_TIMEOUT_S)
        row = await conn.fetchrow(queries["get_broadcast"], workspace_id, broadcast_id, now, timeout=BULK_TIMEOUT_S)
    return BroadcastOutcome("replayed" if replayed else "queued", _broadcast(row))


async def _fan_out(
    conn: asyncpg.Connection, pool: asyncpg.Pool, workspace_id: int, broadcast_id: uuid.UUID,
    audience: Audience, now: datetime | None, planned: tuple[int, int] | None,
) -> bool:
    """Queue a broadcast's chunks on `conn` and up to `FAN_OUT_CONNECTIONS` - 1 more from the
    pool, then total them; False when the workspace is disabled by then.

    Each chunk is one statement that commits with its wake-up, so its people can claim their copy
    before the rest is queued. `planned`: how many chunks and people the plan made (None: a
    replay, which takes chunks until none is left). Each chunk of a large broadcast refreshes the
    planner's statistics of the queue in its own transaction (ANALYZE sees the transaction's own
    rows), so that the claims its wake-up starts are planned again, on them: a claim prepared
    on the queue as it was before took 100 ms instead of 1 ms once the first chunk committed.
    """
    chunks, people = planned if planned is not None else (None, 0)
    emails = [e.lower() for e in audience.emails]
    ids = list(audience.ids)
    path = audience.filter.path if audience.filter else None
    variables = audience.filter.vars if audience.filter else None
    args = (workspace_id, broadcast_id, ids, emails, audience.everyone, now, path, variables)

    # Chunks left to take (None: unknown, a replay): each statement takes one, or finds none.
    left = [chunks]
    taken = [False]

    async def take(conn: asyncpg.Connection) -> asyncpg.Record:
        if people < ANALYZE_AFTER:
            return await conn.fetchrow(queries["queue_broadcast"], *args, timeout=BULK_TIMEOUT_S)
        async with conn.transaction():
            done: asyncpg.Record = await conn.fetchrow(queries["queue_broadcast"], *args, timeout=BULK_TIMEOUT_S)
            if done["queued"]:
                await conn.execute(queries["analyze_queue"], timeout=BULK_TIMEOUT_S)
        return done

    async def work(on: asyncpg.Connection) -> None:
        while left[0] is None or left[0] > 0:
            if left[0] is not None:
                left[0] -= 1
            # A closed broadcast's chunks are done with nothing queued, so that none is
            # left for a replay to queue after the workspace is enabled again.
            if (await take(on))["chunk"] is None:
                return
            taken[0] = True

    async def helper() -> None:
        # Only a free connection helps: under a burst of claims the pool may have none, and
        # then this send's own connection queues every chunk.
        try:
            extra = await pool.acquire(timeout=HELPER_ACQUIRE_S)
        except TimeoutError:
            return
        try:
            await work(extra)
        finally:
            await pool.release(extra)

    helpers = max(0, min(FAN_OUT_CONNECTIONS, pool.get_max_size(), chunks or FAN_OUT_CONNECTIONS) - 1)
    tasks = [asyncio.ensure_future(work(conn))] + [asyncio.ensure_future(helper()) for _ in range(helpers)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # A chunk cut short rolls back and stays for a replay; none keeps running unawaited.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if planned is None and not taken[0]:
        # A replay of a finished send: its `queued` may since be a resend's, which stays.
        return True
    finished = await conn.fetchrow(queries["finish_broadcast"], workspace_id, broadcast_id, timeout=BULK_TIMEOUT_S)
    return bool(finished["enabled"])


@translate_errors
async def resend_broadcast(
    pool: asyncpg.Pool, workspace_id: int, broadcast_id: uuid.UUID, now: datetime | None = None
) -> ResendOutcome:
    """Give every person who got an entry a new one (re-entry) with the same content, in one statement."""
    async with pool.acquire() as conn:
        result = await conn.fetchrow(
            queries["resend_broadcast"], workspace_id, broadcast_id, now, timeout=BULK_TIMEOUT_S
        )
        if result["status"] is None:
            return ResendOutcome("unknown", None)
        row = await conn.fetchrow(queries["get_broadcast"], workspace_id, broadcast_id, now)
    broadcast = _broadcast(row)
    if result["status"] == "recalled":
        return ResendOutcome("recalled", broadcast)
    if not result["enabled"]:
        return ResendOutcome("disabled", broadcast)
    if not result["resent"]:
        return ResendOutcome("expired", broadcast)
    return ResendOutcome("resent", broadcast)


@translate_errors
async def recall_broadcast(
    pool: asyncpg.Pool, workspace_id: int, broadcast_id: uuid.UUID, now: datetime | None = None
) -> RecallOutcome:
    """Recall every entry not yet shown and mark the broadcast recalled; recalling again is harmless."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            # Locked first, in its own statement: the recall's snapshot then includes every entry
            # a resend that held the lock committed.
            if await conn.fetchval(queries["lock_broadcast"], workspace_id, broadcast_id) is None:
                return RecallOutcome(None, 0)
            result = await conn.fetchrow(
                queries["recall_broadcast"], workspace_id, broadcast_id, now, timeout=BULK_TIMEOUT_S
            )
        row = await conn.fetchrow(queries["get_broadcast"], workspace_id, broadcast_id, now)
    return RecallOutcome(_broadcast(row), result["recalled"])


@translate_errors
async def get_broadcast(
    db: Executor, workspace_id: int, broadcast_id: uuid.UUID, now: datetime | None = None
) -> Broadcast | None:
    row = await db.fetchrow(queries["get_broadcast"], workspace_id, broadcast_id, now)
    return _broadcast(row) if row else None


@translate_errors
async def import_people(db: Executor, workspace_id: int, external_ids: list[str]) -> None:
    """Create people by external id in one statement; known ones are left alone."""
    await db.execute(queries["import_people"], workspace_id, external_ids)
