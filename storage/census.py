"""Who a poll must still ask the database about: the census a process answers unknown people from.

Read once per load (decision 0028-short-poll-path.md): everyone with a message queued or offered,
a persistent message shown, or a message within their workspace's recent window (the tier is not
`low`), plus the workspaces with a visit broadcast open (time alone can make a visit due there).
Anyone else has nothing a claim could return and is in the `low` tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .errors import translate_errors
from .pool import Executor
from .sql import queries

__all__ = ["Census", "list_unsettled_people"]


@dataclass(frozen=True, slots=True)
class Census:
    """The keys of unsettled people by workspace (each person's external id, email, visitor id),
    the workspaces with a visit broadcast open, and whether the `limit` cut the list short."""

    people: tuple[tuple[int, str | None, str | None, str | None], ...]
    visit_workspaces: frozenset[int]
    complete: bool


@translate_errors
async def list_unsettled_people(db: Executor, *, now: datetime | None, limit: int) -> Census:
    """At most `limit` unsettled people (`complete` False when there are more)."""
    rows = await db.fetch(queries["list_unsettled_people"], now, limit + 1)
    visits = await db.fetch(queries["list_visit_workspaces"], now)
    return Census(
        people=tuple((r["workspace_id"], r["external_id"], r["email"], r["anonymous_id"]) for r in rows[:limit]),
        visit_workspaces=frozenset(r["workspace_id"] for r in visits),
        complete=len(rows) <= limit,
    )
