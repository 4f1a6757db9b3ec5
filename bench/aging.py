"""Test scaffolding for scenario 6: make a day pass for one workspace's messages, and measure its tables.

Retention counts days on the database clock (`closed_at`, `expires_at` against `now()`), and a
bench cannot wait a day, so this moves a workspace's message times back instead. It is not
product SQL (that all lives in storage/queries.sql): it goes straight to the database, as
`bench.seed` does for setup, and only the bench calls it. The sweep itself stays the gateway's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import asyncpg

__all__ = ["TableSizes", "age_workspace", "due_for_retention", "table_sizes"]

T = TypeVar("T")

# Every time column retention or the tiers read moves back together, so rows stay consistent.
_AGE_MESSAGES = """
UPDATE messages
SET created_at = created_at - make_interval(days => $2),
    expires_at = expires_at - make_interval(days => $2),
    shown_at = shown_at - make_interval(days => $2),
    closed_at = closed_at - make_interval(days => $2)
WHERE workspace_id = $1
"""

# The sweep's own condition (storage/queries.sql, delete_retired_messages), for one workspace.
_DUE = """
SELECT count(*)
FROM messages m JOIN workspaces w ON w.id = m.workspace_id
WHERE m.workspace_id = $1
  AND m.state IN ('shown', 'dismissed', 'expired', 'recalled')
  AND least(m.closed_at, m.expires_at) <= now() - make_interval(days => w.retention_days)
"""

_SIZES = """
SELECT (SELECT count(*) FROM messages WHERE workspace_id = $1) AS messages,
       (SELECT count(*) FROM events WHERE workspace_id = $1) AS events,
       pg_total_relation_size('messages') AS messages_bytes,
       pg_total_relation_size('events') AS events_bytes
"""


@dataclass(frozen=True, slots=True)
class TableSizes:
    """The workspace's rows, and each whole table's bytes on disk (indexes and TOAST included)."""

    messages: int
    events: int
    messages_bytes: int
    events_bytes: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _with_connection(database_url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        conn = await asyncpg.connect(database_url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def age_workspace(database_url: str, workspace_id: int, *, days: int) -> int:
    """Move every message time of the workspace `days` back; returns how many messages moved."""

    async def work(conn: asyncpg.Connection) -> int:
        status: str = await conn.execute(_AGE_MESSAGES, workspace_id, days)
        return int(status.rsplit(" ", 1)[-1])

    return _with_connection(database_url, work)


def due_for_retention(database_url: str, workspace_id: int) -> int:
    """Messages of the workspace the retention sweep would delete now."""

    async def work(conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval(_DUE, workspace_id))

    return _with_connection(database_url, work)


def table_sizes(database_url: str, workspace_id: int) -> TableSizes:
    async def work(conn: asyncpg.Connection) -> TableSizes:
        row = await conn.fetchrow(_SIZES, workspace_id)
        assert row is not None
        return TableSizes(**dict(row))

    return _with_connection(database_url, work)
