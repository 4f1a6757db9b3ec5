"""Single sends: one message for one person, from content or a stored template, personalized
for them; and reading, recalling and test-sending single messages.

Templates parse before any database work, so a broken one is a 422 at once and nothing is stored;
they render in a render thread, off the event loop, within the render budget (budget.py).
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

import storage
from storage import AudienceMember, Event, Idempotency, Message, NewMessage, Person

from ..errors import Conflict, ErrorCode, IdempotencyKeyReused, InAppDisabled, NotFound, Unprocessable
from .budget import off_loop
from .personalize import compile_content, customer_of

__all__ = [
    "DEFAULT_TTL_S",
    "Personalization",
    "Recipient",
    "Sent",
    "get_message",
    "personalized",
    "recall_message",
    "send_message",
    "with_expiry",
]

DEFAULT_TTL_S = 30 * 86400


@dataclass(frozen=True, slots=True)
class Recipient:
    """Exactly one of the person's id and email."""

    id: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Personalization:
    """How a send's Liquid renders: `data` is `{{ data.* }}`; `strict` makes a missing variable an error."""

    data: dict[str, Any] | None = None
    strict: bool = False

    def context(self, person: Person | AudienceMember) -> dict[str, Any]:
        """What the templates see: `customer` (the person) and, when the send gave it, `data`."""
        context: dict[str, Any] = {"customer": customer_of(person)}
        if self.data is not None:
            context["data"] = self.data
        return context


@dataclass(frozen=True, slots=True)
class Sent:
    """The queued message; `replayed` when an earlier send with the same idempotency key made it."""

    message: Message
    replayed: bool = False


def with_expiry(message: NewMessage, now: datetime | None) -> NewMessage:
    """The message with its default time to live, refused when `expires_at` has already passed."""
    current = now or datetime.now(UTC)
    if message.expires_at is not None and message.expires_at <= current:
        raise Unprocessable(
            "`expires_at` is in the past; the message could never be delivered", code=ErrorCode.EXPIRES_AT_IN_PAST
        )
    return dataclasses.replace(message, ttl_s=message.ttl_s or DEFAULT_TTL_S)


def personalized(
    content: dict[str, Any], personalization: Personalization
) -> Callable[[Person], dict[str, Any]] | None:
    """A function rendering the content for a person, or None when it holds no Liquid.

    Templates parse here, before any database work: a broken one is a 422 at once.
    """
    compiled = compile_content(content, strict=personalization.strict)
    if not compiled.templates:
        return None

    def render(person: Person) -> dict[str, Any]:
        return compiled.render(personalization.context(person))

    return render


async def send_message(
    pool: asyncpg.Pool,
    workspace_id: int,
    to: Recipient,
    message: NewMessage,
    *,
    personalization: Personalization | None = None,
    idempotency: Idempotency | None = None,
    now: datetime | None = None,
) -> Sent:
    """POST /v1/messages: the given content or a stored template's, rendered for the person.

    A template's properties are the defaults under the send's own.
    """
    message = with_expiry(message, now)
    if message.template_id is not None:
        template = await storage.get_template(pool, workspace_id, message.template_id)
        if template is None:
            raise Unprocessable(
                "no template has this id in this workspace - at `$.template_id`", code=ErrorCode.UNKNOWN_TEMPLATE
            )
        message = dataclasses.replace(
            message, content=template.content, properties={**template.properties, **message.properties}
        )
    assert message.content is not None
    render = personalized(message.content, personalization or Personalization())
    outcome = await storage.send_message(
        pool,
        workspace_id,
        message,
        external_id=to.id,
        email=to.email,
        render=None if render is None else functools.partial(off_loop, render),
        idempotency=idempotency,
        now=now,
    )
    if outcome.status == "disabled":
        raise InAppDisabled()
    if outcome.status == "key_reused":
        raise IdempotencyKeyReused()
    assert outcome.message is not None
    return Sent(outcome.message, replayed=outcome.status == "replayed")


def _unknown_message() -> NotFound:
    return NotFound("no message has this id in this workspace", code=ErrorCode.UNKNOWN_MESSAGE)


async def get_message(
    pool: asyncpg.Pool, workspace_id: int, message_id: uuid.UUID, now: datetime | None
) -> tuple[Message, list[Event]]:
    """The message as it is now, with every event of its lifecycle."""
    message = await storage.get_message(pool, workspace_id, message_id, now)
    if message is None:
        raise _unknown_message()
    return message, await storage.list_message_events(pool, message.id)


async def recall_message(pool: asyncpg.Pool, workspace_id: int, message_id: uuid.UUID, now: datetime | None) -> Message:
    """Take back a queued or offered message; one a device has shown is the person's for good."""
    previous = await storage.recall_message(pool, workspace_id, message_id, now)
    if previous is None:
        raise _unknown_message()
    if previous in ("shown", "dismissed"):
        raise Conflict(
            "the message was already shown on a device; it cannot be recalled", code=ErrorCode.ALREADY_SHOWN
        )
    if previous == "expired":
        raise Conflict("the message expired before it could be recalled", code=ErrorCode.ALREADY_EXPIRED)
    message = await storage.get_message(pool, workspace_id, message_id, now)
    assert message is not None
    return message
