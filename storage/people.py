"""People: resolving an id or email to one person, and identify (attributes, linking an email).

A person's attributes have two sides (decision 0012): `attributes`, which only the backend writes,
and `device_attributes`, which devices write. Every write is checked against per-person limits on
its side, after the merge, inside the transaction: a write past them leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from .errors import Conflict, LimitExceeded, translate_errors
from .models import Person
from .pool import Executor
from .sql import queries

__all__ = ["ensure_person", "get_person", "identify_device_person", "identify_person"]


def _person(row: asyncpg.Record) -> Person:
    return Person(
        id=row["id"],
        external_id=row["external_id"],
        email=row["email"],
        attributes=row.get("attributes") or {},
        device_attributes=row.get("device_attributes") or {},
        readable_attributes=row.get("readable_attributes"),
    )


def _split(attributes: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Attributes to set, and the names to remove (a None value)."""
    return {k: v for k, v in attributes.items() if v is not None}, [k for k, v in attributes.items() if v is None]


def _check_limits(row: asyncpg.Record, max_attributes: int | None, max_bytes: int | None) -> None:
    """Raise `LimitExceeded` (rolling the transaction back) past a limit; None: no limit."""
    count, size = row["attribute_count"], row["attribute_bytes"]
    if (max_attributes is not None and count > max_attributes) or (max_bytes is not None and size > max_bytes):
        raise LimitExceeded(count, size)


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
    max_attributes: int | None = None,
    max_bytes: int | None = None,
) -> Person:
    """Store the backend's attributes (a None value removes one) and, when `set_email`, link or
    unlink the email.

    Messages sent to the email before anyone was identified by it move to this person, with the
    attributes of either side that person had. An email held by a person with another id raises
    `Conflict("email_in_use")`; more than `max_attributes` or `max_bytes` (JSON as stored) on the
    backend's side raises `LimitExceeded` (None: no limit; the gateway always passes both).
    """
    to_set, to_remove = _split(attributes)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            queries["upsert_person_attributes"], workspace_id, external_id, to_set, to_remove
        )
        _check_limits(row, max_attributes, max_bytes)
        if not set_email or (email is not None and row["email"] == email.lower()):
            return _person(row)
        inherited: dict[str, Any] = {}
        inherited_device: dict[str, Any] = {}
        if email is not None:
            email = email.lower()
            holder = await conn.fetchrow(queries["lock_person_by_email"], workspace_id, email)
            if holder is not None and holder["id"] != row["id"]:
                if holder["external_id"] is not None:
                    raise Conflict("email_in_use", f"{email} belongs to another person")
                await conn.execute(queries["move_person_history"], row["id"], holder["id"])
                await conn.execute(queries["delete_person"], holder["id"])
                inherited = holder["attributes"]
                inherited_device = holder["device_attributes"]
        row = await conn.fetchrow(queries["set_person_email"], row["id"], email, inherited, inherited_device)
        # Whenever the email changes, moved messages or not: a poll by that email now reaches this
        # person's queue, so every process must drop what it remembered about the email
        # (docs/decisions/0021-answer-from-memory.md). After set_person_email: the notice names the
        # person's keys as the row now has them, the linked email included, so polls parked under
        # either key wake.
        await conn.execute(queries["notify_queue"], workspace_id, row["id"])
    return _person(row)


@translate_errors
async def identify_device_person(
    pool: asyncpg.Pool,
    workspace_id: int,
    user: str,
    attributes: dict[str, Any],
    *,
    create_by_email: bool,
    max_attributes: int | None = None,
    max_bytes: int | None = None,
    anonymous_id: str | None = None,
) -> Person:
    """Store a device's attributes (a None value removes one of the device's) for the person `user`
    names, by id or else by email, as a poll resolves it; never touches the backend's side.

    Nobody named so: the person is created, known by `user` as an email with `create_by_email`,
    else as an id. Past `max_attributes` or `max_bytes` on the device's side: `LimitExceeded`.
    With `anonymous_id`, the visitor this device polled as until now is merged into the person:
    its messages and history move to them, its visit entries are copied, and their polls are woken.
    """
    to_set, to_remove = _split(attributes)
    async with pool.acquire() as conn, conn.transaction():
        args = (queries["merge_device_attributes"], workspace_id, user, to_set, to_remove)
        row = await conn.fetchrow(*args)
        if row is None:
            if create_by_email:
                await ensure_person(conn, workspace_id, external_id=None, email=user)
            else:
                await ensure_person(conn, workspace_id, external_id=user, email=None)
            row = await conn.fetchrow(*args)
        _check_limits(row, max_attributes, max_bytes)
        if anonymous_id is not None:
            await _merge_visitor(conn, workspace_id, row["id"], anonymous_id)
    return _person(row)


async def _merge_visitor(conn: asyncpg.Connection, workspace_id: int, person_id: int, anonymous_id: str) -> None:
    """Fold the visitor into the person, in the caller's transaction; an unknown visitor is a no-op.

    The emptied visitor is kept with its visit entries: another tab of the browser may poll as it
    until reloaded, and must not enter a `once` visit broadcast a second time."""
    visitor_id = await conn.fetchval(queries["lock_visitor"], workspace_id, anonymous_id)
    if visitor_id is None:
        return
    await conn.execute(queries["move_person_history"], person_id, visitor_id)
    await conn.execute(queries["merge_visitor"], person_id, visitor_id)
    await conn.execute(queries["notify_queue"], workspace_id, person_id)
