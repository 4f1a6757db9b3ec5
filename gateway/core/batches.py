"""Batch sends: up to 1,000 single sends in one request, each with its own result.

Rules: an item that cannot be sent (a past `expires_at`, an unknown template, a template that
does not parse or render, a reused idempotency key) gets its own error and never stops the
others. Whatever the batch holds, it costs a bounded number of round trips: one per distinct
template, one to read the people personalized items name, and one statement that queues every
item (decision 0022). A disabled workspace refuses the whole batch, as it refuses a single send.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

import storage
from storage import Idempotency, NewMessage, Outgoing

from ..errors import ApiError, ErrorCode, IdempotencyKeyReused, InAppDisabled, Unprocessable
from .budget import off_loop
from .sends import Personalization, Recipient, Sent, personalized, with_expiry

__all__ = ["MAX_BATCH", "BatchItem", "send_batch"]

# Items per request: enough for a backend's burst, small enough to answer within the pool's
# statement timeout on a small host.
MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One send of a batch, as `sends.send_message` takes it."""

    to: Recipient
    message: NewMessage
    personalization: Personalization | None = None
    idempotency: Idempotency | None = None


# Per item: the queued (or replayed) message, or why it was not sent.
Result = Sent | ApiError


async def _templates(
    pool: asyncpg.Pool, workspace_id: int, items: Sequence[BatchItem]
) -> dict[Any, storage.Template | None]:
    """Each distinct template the items name, read once (None: not in this workspace)."""
    found: dict[Any, storage.Template | None] = {}
    for item in items:
        template_id = item.message.template_id
        if template_id is not None and template_id not in found:
            found[template_id] = await storage.get_template(pool, workspace_id, template_id)
    return found


def _resolved(item: BatchItem, templates: dict[Any, storage.Template | None], now: datetime | None) -> NewMessage:
    """The item's message with its expiry and its template's content; raises what a single send would."""
    message = with_expiry(item.message, now)
    if message.template_id is not None:
        template = templates[message.template_id]
        if template is None:
            raise Unprocessable(
                "no template has this id in this workspace - at `$.template_id`", code=ErrorCode.UNKNOWN_TEMPLATE
            )
        message = dataclasses.replace(
            message, content=template.content, properties={**template.properties, **message.properties}
        )
    return message


async def send_batch(
    pool: asyncpg.Pool, workspace_id: int, items: Sequence[BatchItem], *, now: datetime | None = None
) -> list[Result]:
    """POST /v1/messages/batch: each item sent as `sends.send_message` would send it, one result per item."""
    results: list[Result | None] = [None] * len(items)
    templates = await _templates(pool, workspace_id, items)
    ready: dict[int, NewMessage] = {}
    renders: dict[int, Any] = {}
    for index, item in enumerate(items):
        try:
            message = _resolved(item, templates, now)
            assert message.content is not None
            render = personalized(message.content, item.personalization or Personalization())
        except ApiError as exc:
            results[index] = exc
            continue
        ready[index] = message
        if render is not None:
            renders[index] = render
    if renders:
        ids = [to.id for to in (items[i].to for i in renders) if to.id is not None]
        emails = [to.email for to in (items[i].to for i in renders) if to.email is not None]
        found = await storage.list_recipients(pool, workspace_id, external_ids=ids, emails=emails)
        for index, render in renders.items():
            to = items[index].to
            try:
                content = await off_loop(render, storage.recipient_of(found, to.id, to.email))
            except ApiError as exc:
                results[index] = exc
                del ready[index]
                continue
            ready[index] = dataclasses.replace(ready[index], content=content)
    order = sorted(ready)
    outcomes = await storage.send_messages(
        pool, workspace_id,
        [Outgoing(ready[i], items[i].to.id, items[i].to.email, items[i].idempotency) for i in order], now=now,
    ) if order else []
    for index, outcome in zip(order, outcomes, strict=True):
        if outcome.status == "disabled":
            raise InAppDisabled()
        if outcome.status == "key_reused":
            results[index] = IdempotencyKeyReused()
            continue
        assert outcome.message is not None
        results[index] = Sent(outcome.message, replayed=outcome.status == "replayed")
    return [result for result in results if result is not None]
