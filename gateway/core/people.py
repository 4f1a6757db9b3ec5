"""People: identify from the backend and from devices, and a person's messages.

Who writes what (decision 0012): `id`, `email` and the backend's attributes belong to the
backend (`PUT /v1/people/{id}`). A device (`POST /v1/identify`) writes attributes of its own,
kept apart, and never links, changes or removes an email. Each side is capped per person.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

import storage
from storage import Message, Person

from ..errors import Conflict, ErrorCode, NotFound, Unprocessable
from .content import is_email

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_BYTES",
    "SERVER_ONLY_ATTRIBUTES",
    "identify_device_person",
    "identify_person",
    "person_messages",
]

# Per request, and per person on each side (the backend's, the devices').
MAX_ATTRIBUTES = 100
# Per person on each side: the attributes' JSON as stored (PostgreSQL's jsonb text), in bytes.
MAX_ATTRIBUTE_BYTES = 16 * 1024
# What only the backend ever sets: a device naming one is refused.
SERVER_ONLY_ATTRIBUTES = frozenset({"id", "email"})


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


def _over_limit(side: str, exc: storage.LimitExceeded) -> Unprocessable:
    return Unprocessable(
        f"this would leave the person {exc.count} {side} attributes of {exc.size} bytes; the limit is "
        f"{MAX_ATTRIBUTES} attributes and {MAX_ATTRIBUTE_BYTES} bytes: remove some (a null value removes one)",
        code=ErrorCode.ATTRIBUTES_LIMIT,
    )


async def identify_person(
    pool: asyncpg.Pool, workspace_id: int, external_id: str, attributes: dict[str, Any]
) -> Person:
    """The backend's identify: store its attributes; an `email` attribute links (or, null, unlinks) it."""
    _check_attributes(attributes)
    attributes = dict(attributes)
    set_email = "email" in attributes
    email = attributes.pop("email", None)
    if email is not None and not (isinstance(email, str) and is_email(email)):
        raise Unprocessable("`email` must be an email address or null - at `$.email`")
    try:
        return await storage.identify_person(
            pool, workspace_id, external_id, attributes, email=email, set_email=set_email,
            max_attributes=MAX_ATTRIBUTES, max_bytes=MAX_ATTRIBUTE_BYTES,
        )
    except storage.LimitExceeded as exc:
        raise _over_limit("backend", exc) from None
    except storage.Conflict as exc:
        if exc.constraint == "email_in_use":
            raise Conflict(f"{email} belongs to a person with another id", code=ErrorCode.EMAIL_IN_USE) from None
        raise


async def identify_device_person(
    pool: asyncpg.Pool, workspace_id: int, user: str, attributes: dict[str, Any], *,
    proven_email: str | None = None, anonymous_id: str | None = None,
) -> Person:
    """A device's identify: store attributes on the device's side of the person `user` names.

    `user` resolves as a poll resolves it: an id, or else an email; an email-shaped `user` nobody
    has yet becomes a person known by that email, never one whose id is the email.
    `proven_email` is the hook for an email the device has proven (a signed token's claim): it is
    linked as the backend would link it. Without it, a device never links an email.
    `anonymous_id`: the visitor this device polled as before; its messages, history and visit
    entries follow the person (decision 0023).
    """
    _check_attributes(attributes)
    refused = sorted(SERVER_ONLY_ATTRIBUTES & attributes.keys())
    if refused:
        raise Unprocessable(
            f"`{refused[0]}` is set by your backend (`PUT /v1/people/{{id}}`), never by a device"
            f" - at `$.attributes.{refused[0]}`"
        )
    try:
        person = await storage.identify_device_person(
            pool, workspace_id, user, attributes, create_by_email=is_email(user),
            max_attributes=MAX_ATTRIBUTES, max_bytes=MAX_ATTRIBUTE_BYTES, anonymous_id=anonymous_id,
        )
    except storage.LimitExceeded as exc:
        raise _over_limit("device", exc) from None
    if proven_email is None or person.external_id is None:
        return person
    return await identify_person(pool, workspace_id, person.external_id, {"email": proven_email})


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
