"""Retention: delete final messages and their events once their workspace's period has passed.

A message and its events go together (events have no foreign key since migration 0005), in
small batches: each is one short statement that skips rows other transactions hold, so the sweep
never holds long locks. One process sweeps at a time: the statement takes a transaction-level
advisory lock itself, so no session state is left on a pool connection. What must outlive the
rows (a person's latest message time, each broadcast's counts) is folded into summary columns by
the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .errors import translate_errors
from .sql import queries

__all__ = ["RETENTION_LOCK_KEY", "RetentionSweep", "delete_retired_messages"]

RETENTION_LOCK_KEY = int.from_bytes(b"msretain", "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True, slots=True)
class RetentionSweep:
    """`busy`: another process was sweeping, so this one deleted nothing."""

    deleted: int
    busy: bool = False


@translate_errors
async def delete_retired_messages(
    pool: asyncpg.Pool, *, batch: int = 500, max_batches: int = 1000, now: datetime | None = None
) -> RetentionSweep:
    """Delete batches until none is full (or `max_batches` ran); returns how many messages went."""
    deleted = 0
    for _ in range(max_batches):
        row = await pool.fetchrow(queries["delete_retired_messages"], now, batch, RETENTION_LOCK_KEY)
        if not row["held"]:
            return RetentionSweep(deleted, busy=True)
        deleted += row["deleted"]
        if row["deleted"] < batch:
            break
    return RetentionSweep(deleted)
