"""People: resolving an id or email to one person, and identify (attributes, linking an email)."""

from __future__ import annotations

from typing import Any

import asyncpg

from .errors import Conflict, translate_errors
from .models import Person
from .pool import Executor
from .sql import queries

__all__ = ["ensure_person", "get_person", "identify_person"]


def _person(row: asyncpg.Record) -> Person:
    return Person(
        id=row["id"],
        external_id=row["external_id"],
        email=row["email"],
        attributes=row.get("attributes") or {},
    )


async def ensure_person(
    db: Executor, workspace_id: int, *, external_id: str | None, email: str | None
) -> Person:
    """The person a message is addressed to, created if new; exactly one of the two is given."""
    if external_id is not None:
        row = await db.fetchrow(queries["ensure_person_by_external_id"], workspace_id, external_id)
    else:
        assert email is not None
        row = await db.fetchrow(queries["ensure_person_by_email"], workspace_id, email.lower())
    return _person(row)


@translate_errors
async def get_person(db: Executor, workspace_id: int, user: str) -> Person | None:
    """The person a device or the API names by id or email (an id match wins)."""
    row = await db.fetchrow(queries["get_person"], workspace_id, user)
    return _person(row) if row else None


@translate_errors
async def identify_person(
    pool: asyncpg.Pool,
    workspace_id: int,
    external_id: str,
    attributes: dict[str, Any],
    *,
    email: str | None,
    set_email: bool,
) -> Person:
    """Store attributes (a None value removes one) and, when `set_email`, link or unlink the email.

    Messages sent to the email before anyone was identified by it move to this person. An email
    held by a person with another id raises `Conflict("email_in_use")`.
    """
    to_set = {k: v for k, v in attributes.items() if v is not None}
    to_remove = [k for k, v in attributes.items() if v is None]
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            queries["upsert_person_attributes"], workspace_id, external_id, to_set, to_remove
        )
        if not set_email or (email is not None and row["email"] == email.lower()):
            return _person(row)
        inherited: dict[str, Any] = {}
        moved = False
        if email is not None:
            email = email.lower()
            holder = await conn.fetchrow(queries["lock_person_by_email"], workspace_id, email)
            if holder is not None and holder["id"] != row["id"]:
                if holder["external_id"] is not None:
                    raise Conflict("email_in_use", f"{email} belongs to another person")
                await conn.execute(queries["move_person_history"], row["id"], holder["id"])
                await conn.execute(queries["delete_person"], holder["id"])
                inherited = holder["attributes"]
                moved = True
        row = await conn.fetchrow(queries["set_person_email"], row["id"], email, inherited)
        if moved:
            # After set_person_email: the notice names the person's keys as the row now has
            # them, the linked email included, so polls parked under either key wake.
            await conn.execute(queries["notify_queue"], workspace_id, row["id"])
    return _person(row)
