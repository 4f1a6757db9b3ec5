"""Broadcasts: one send queued for a whole audience with a constant number of statements."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from .errors import translate_errors
from .pool import Executor
from .sql import queries

__all__ = ["Audience", "Broadcast", "BroadcastOutcome", "get_broadcast", "import_people", "send_broadcast"]


@dataclass(frozen=True, slots=True)
class Audience:
    """Exactly one of: these external ids, these emails, or everyone in the workspace."""

    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    everyone: bool = False

    def as_json(self) -> dict[str, Any]:
        if self.everyone:
            return {"all": True}
        if self.emails:
            return {"emails": len(self.emails)}
        return {"ids": len(self.ids)}


@dataclass(frozen=True, slots=True)
class Broadcast:
    id: uuid.UUID
    status: str
    queued: int
    campaign: str | None
    created_at: datetime
    states: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BroadcastOutcome:
    status: Literal["queued", "replayed", "disabled", "key_reused"]
    broadcast: Broadcast | None


class _Disabled(Exception):
    """Raised inside the transaction so that nothing of a refused broadcast stays."""


def _broadcast(row: asyncpg.Record) -> Broadcast:
    return Broadcast(
        id=row["id"], status=row["status"], queued=row["queued"], campaign=row["campaign"],
        created_at=row["created_at"], states=dict(row["states"]),
    )


@translate_errors
async def send_broadcast(
    pool: asyncpg.Pool,
    workspace_id: int,
    audience: Audience,
    *,
    content: dict[str, Any],
    properties: dict[str, Any],
    priority: int,
    persistent: bool,
    campaign: str | None,
    expires_at: datetime | None,
    ttl_s: int,
    idempotency_key: str | None = None,
    idempotency_hash: bytes | None = None,
    now: datetime | None = None,
) -> BroadcastOutcome:
    """Queue one message per person of the audience (people named but unknown are created)."""
    emails = [e.lower() for e in audience.emails]
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                broadcast_id = await conn.fetchval(
                    queries["create_broadcast"], workspace_id, audience.as_json(), content, properties, priority,
                    persistent, campaign, expires_at, ttl_s, idempotency_key, idempotency_hash, now,
                )
                if broadcast_id is None:
                    earlier = await conn.fetchval(
                        queries["get_broadcast_id_by_idempotency_key"], workspace_id, idempotency_key
                    )
                    row = await conn.fetchrow(queries["get_broadcast"], workspace_id, earlier)
                    if row["idempotency_hash"] != idempotency_hash:
                        return BroadcastOutcome("key_reused", None)
                    return BroadcastOutcome("replayed", _broadcast(row))
                if audience.ids or emails:
                    await conn.execute(queries["ensure_people"], workspace_id, list(audience.ids), emails)
                result = await conn.fetchrow(
                    queries["queue_broadcast"], workspace_id, broadcast_id, list(audience.ids), emails,
                    audience.everyone, now,
                )
                if not result["enabled"]:
                    raise _Disabled
        except _Disabled:
            return BroadcastOutcome("disabled", None)
        row = await conn.fetchrow(queries["get_broadcast"], workspace_id, broadcast_id)
    return BroadcastOutcome("queued", _broadcast(row))


@translate_errors
async def get_broadcast(db: Executor, workspace_id: int, broadcast_id: uuid.UUID) -> Broadcast | None:
    row = await db.fetchrow(queries["get_broadcast"], workspace_id, broadcast_id)
    return _broadcast(row) if row else None


@translate_errors
async def import_people(db: Executor, workspace_id: int, external_ids: list[str]) -> None:
    """Create people by external id in one statement; known ones are left alone."""
    await db.execute(queries["import_people"], workspace_id, external_ids)
