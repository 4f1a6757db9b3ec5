"""People: identify (shared by the server API and the device API) and a person's messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

import storage
from storage import Message, Person

from ..errors import Conflict, ErrorCode, NotFound, Unprocessable
from .content import is_email

__all__ = ["MAX_ATTRIBUTES", "identify_person", "person_messages"]

MAX_ATTRIBUTES = 100


def _check_attributes(attributes: dict[str, Any]) -> None:
    """At most 100 attributes named 1-64 characters; `*_at` ones are Unix seconds."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise Unprocessable(f"at most {MAX_ATTRIBUTES} attributes per person")
    for name, value in attributes.items():
        if not 1 <= len(name) <= 64:
            raise Unprocessable("attribute names have 1 to 64 characters")
        if name.endswith("_at") and value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise Unprocessable(f"`{name}` is a time: give Unix seconds as a number - at `$.{name}`")


async def identify_person(
    pool: asyncpg.Pool, workspace_id: int, external_id: str, attributes: dict[str, Any]
) -> Person:
    """Store attributes for the person with this id; an `email` attribute links (or, null, unlinks) it."""
    _check_attributes(attributes)
    attributes = dict(attributes)
    set_email = "email" in attributes
    email = attributes.pop("email", None)
    if email is not None and not (isinstance(email, str) and is_email(email)):
        raise Unprocessable("`email` must be an email address or null - at `$.email`")
    try:
        return await storage.identify_person(
            pool, workspace_id, external_id, attributes, email=email, set_email=set_email
        )
    except storage.Conflict as exc:
        if exc.constraint == "email_in_use":
            raise Conflict(f"{email} belongs to a person with another id", code=ErrorCode.EMAIL_IN_USE) from None
        raise


async def person_messages(
    pool: asyncpg.Pool, workspace_id: int, key: str, *, by: str, now: datetime | None
) -> tuple[Person, list[Message]]:
    """A person's queue and recent messages; `by` says whether `key` is their `id` or `email`."""
    if by not in ("id", "email"):
        raise Unprocessable("`by` is `id` or `email`")
    person = await storage.get_person(pool, workspace_id, key)
    if person is None or (by == "id" and person.external_id != key) or (
        by == "email" and person.email != key.lower()
    ):
        raise NotFound("no person with this id in this workspace", code=ErrorCode.UNKNOWN_PERSON)
    return person, await storage.list_person_messages(pool, person.id, now=now)
