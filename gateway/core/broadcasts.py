"""Broadcasts: one send for many people, queued in bulk, resent and recalled as one.

Plain content takes the single-statement path; content with Liquid is rendered per person
(with `customer` as in a single send and the request's `data`) before anything is queued, a
chunk of people per hand-off to a render thread, each person within the render budget.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

import storage
from storage import AudienceMember, Broadcast, Idempotency, NewMessage

from ..errors import Conflict, ErrorCode, IdempotencyKeyReused, InAppDisabled, NotFound, TemplateError, Unprocessable
from .budget import off_loop
from .filters import compile_filter
from .personalize import CompiledContent, compile_content, has_templates
from .sends import DEFAULT_TTL_S, Personalization, with_expiry

__all__ = ["AudienceChoice", "audience_of", "get_broadcast", "recall_broadcast", "resend_broadcast", "send_broadcast"]


@dataclass(frozen=True, slots=True)
class AudienceChoice:
    """Who a broadcast is for, as asked: exactly one of ids, emails, everyone, a filter, or
    everyone who visits (`visitors`, with `every_hours`, None: once, and `ends_at`, None: in 30 days)."""

    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    everyone: bool = False
    # A filter is any JSON, null included, so its presence is a separate fact.
    has_filter: bool = False
    filter: Any = field(default=None)
    visitors: bool = False
    every_hours: int | None = None
    ends_at: datetime | None = None


def _visit_rule(choice: AudienceChoice, now: datetime | None) -> storage.VisitRule:
    """A visit broadcast's rule; an end that has passed is refused, as the rule could never deliver."""
    current = now or datetime.now(UTC)
    ends_at = choice.ends_at or current + timedelta(seconds=DEFAULT_TTL_S)
    if ends_at <= current:
        raise Unprocessable("`ends_at` has passed; no visitor could ever get this broadcast - at `$.ends_at`")
    every_s = choice.every_hours * 3600 if choice.every_hours is not None else None
    return storage.VisitRule(ends_at=ends_at, every_s=every_s)


def _audience(choice: AudienceChoice, now: datetime | None = None) -> storage.Audience:
    if choice.visitors:
        return storage.Audience(visit=_visit_rule(choice, now))
    if choice.has_filter:
        compiled = compile_filter(choice.filter, "$.audience.filter")
        return storage.Audience(filter=storage.AudienceFilter(compiled.path, compiled.vars, choice.filter))
    return storage.Audience(ids=choice.ids, emails=choice.emails, everyone=choice.everyone)


def audience_of(choice: AudienceChoice) -> storage.Audience:
    """The audience as storage selects it (a bad filter is a 422 before any query): the console counts it."""
    return _audience(choice)


def _renderer(
    compiled: CompiledContent, personalization: Personalization
) -> Callable[[list[AudienceMember]], Awaitable[list[dict[str, Any]]]]:
    """Each person's content, rendered as a single send would render it for them."""

    def render(people: list[AudienceMember]) -> list[dict[str, Any]]:
        contents = []
        for person in people:
            try:
                contents.append(compiled.render(personalization.context(person)))
            except TemplateError as exc:
                who = person.external_id if person.external_id is not None else person.email
                raise type(exc)(f"{exc.message} (rendering for person {who!r}); nothing was queued") from None
        return contents

    async def render_off_loop(people: list[AudienceMember]) -> list[dict[str, Any]]:
        return await off_loop(render, people)

    return render_off_loop


def _unknown() -> NotFound:
    return NotFound("no broadcast has this id in this workspace", code=ErrorCode.UNKNOWN_BROADCAST)


@dataclass(frozen=True, slots=True)
class SentBroadcast:
    broadcast: Broadcast
    replayed: bool = False


async def send_broadcast(
    pool: asyncpg.Pool,
    workspace_id: int,
    choice: AudienceChoice,
    message: NewMessage,
    *,
    personalization: Personalization | None = None,
    idempotency: Idempotency | None = None,
    now: datetime | None = None,
) -> SentBroadcast:
    message = with_expiry(message, now)
    audience = _audience(choice, now)
    content = message.content
    assert content is not None
    personalization = personalization or Personalization()
    if audience.visit is not None:
        # The broadcast ends with its rule: a resend's copies expire then too, and none is made after.
        message = dataclasses.replace(message, expires_at=audience.visit.ends_at)
    if audience.visit is not None and has_templates(content):
        # A visitor's copy is made by the claim statement, in SQL, where Liquid cannot run.
        raise Unprocessable(
            "a broadcast to visitors cannot use Liquid ({{ }} or {% %}): each copy is made when a visitor "
            "polls, with no one to render it for - at `$.content`"
        )
    # Templates parse before anything is stored.
    render = (
        _renderer(compile_content(content, strict=personalization.strict), personalization)
        if has_templates(content) else None
    )
    outcome = await storage.send_broadcast(
        pool, workspace_id, audience, message, render=render, idempotency=idempotency, now=now
    )
    if outcome.status == "disabled":
        raise InAppDisabled()
    if outcome.status == "key_reused":
        raise IdempotencyKeyReused()
    assert outcome.broadcast is not None
    return SentBroadcast(outcome.broadcast, replayed=outcome.status == "replayed")


async def get_broadcast(
    pool: asyncpg.Pool, workspace_id: int, broadcast_id: uuid.UUID, now: datetime | None
) -> Broadcast:
    broadcast = await storage.get_broadcast(pool, workspace_id, broadcast_id, now)
    if broadcast is None:
        raise _unknown()
    return broadcast


async def resend_broadcast(
    pool: asyncpg.Pool, workspace_id: int, broadcast_id: uuid.UUID, now: datetime | None
) -> Broadcast:
    """Queue the broadcast again for its audience as it is now: each person can get it once more."""
    outcome = await storage.resend_broadcast(pool, workspace_id, broadcast_id, now)
    if outcome.status == "unknown":
        raise _unknown()
    if outcome.status == "recalled":
        raise Conflict("this broadcast was recalled; a recalled broadcast cannot be resent",
                       code=ErrorCode.BROADCAST_RECALLED)
    if outcome.status == "disabled":
        raise InAppDisabled()
    if outcome.status == "expired":
        raise Conflict("this broadcast's `expires_at` has passed; send a new broadcast instead",
                       code=ErrorCode.BROADCAST_EXPIRED)
    assert outcome.broadcast is not None
    return outcome.broadcast


async def recall_broadcast(
    pool: asyncpg.Pool, workspace_id: int, broadcast_id: uuid.UUID, now: datetime | None
) -> tuple[Broadcast, int]:
    """The broadcast after taking back every copy no device has shown, and how many that was."""
    outcome = await storage.recall_broadcast(pool, workspace_id, broadcast_id, now)
    if outcome.broadcast is None:
        raise _unknown()
    return outcome.broadcast, outcome.recalled
