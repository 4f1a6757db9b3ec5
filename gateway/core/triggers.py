"""Event triggers: defining them, and the events that fire them, from the backend and from devices.

Rules: a trigger's content templates are parsed when the trigger is created, so a broken one is
a 422 then; its message is rendered for each matching event, with `customer` (the person),
`event` (`name`, `data`) and `data` (the trigger's own values). A message that cannot render
for this person and event is skipped and reported, never queued broken. Event data from devices
is the device's word: it is only ever rendered as text, in a render thread, within the render
budget (an unauthenticated `/v1/track` can name a trigger whose template loops over it).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

import storage
from storage import EventOutcome, MatchedTrigger, NewMessage, Person, Trigger, TriggeredMessage

from ..errors import ErrorCode, NotFound, Unprocessable
from .budget import off_loop
from .content import is_email
from .filters import compile_filter
from .personalize import compile_content, customer_of, has_templates
from .sends import DEFAULT_TTL_S, Personalization

__all__ = ["RecordedEvent", "create_trigger", "disable_trigger", "list_triggers", "record_event"]

log = logging.getLogger("mailslot.gateway.triggers")


def _stored_spec(message: NewMessage, personalization: Personalization) -> dict[str, Any]:
    """The message as the trigger stores it, every field present; content templates are parsed now."""
    spec: dict[str, Any] = {
        "data": personalization.data or {},
        "properties": message.properties,
        "priority": message.priority,
        "persistent": message.persistent,
        "ttl_s": message.ttl_s or DEFAULT_TTL_S,
        "campaign": message.campaign,
        "strict": personalization.strict,
    }
    if message.content is None:
        return {"template_id": str(message.template_id), **spec}
    compile_content(message.content, strict=personalization.strict)
    return {"content": message.content, **spec}


async def create_trigger(
    pool: asyncpg.Pool,
    workspace_id: int,
    *,
    event: str,
    filter: dict[str, Any] | None,
    message: NewMessage,
    personalization: Personalization,
    reentry: Literal["every_time", "once"],
    now: datetime | None,
) -> Trigger:
    spec = _stored_spec(message, personalization)
    compiled = None if filter is None else {"source": filter, **compile_filter(filter).as_json()}
    trigger = await storage.create_trigger(
        pool, workspace_id, event=event, filter=compiled, message=spec, reentry=reentry,
        template_id=message.template_id, now=now,
    )
    if trigger is None:
        raise Unprocessable("no template has this id in this workspace - at `$.message.template_id`",
                            code=ErrorCode.UNKNOWN_TEMPLATE)
    return trigger


async def list_triggers(pool: asyncpg.Pool, workspace_id: int) -> list[Trigger]:
    return await storage.list_triggers(pool, workspace_id)


async def disable_trigger(pool: asyncpg.Pool, workspace_id: int, trigger_id: uuid.UUID) -> Trigger:
    trigger = await storage.disable_trigger(pool, workspace_id, trigger_id)
    if trigger is None:
        raise NotFound("no trigger has this id in this workspace", code=ErrorCode.UNKNOWN_TRIGGER)
    return trigger


def _render(content: dict[str, Any], strict: bool, context: dict[str, Any]) -> dict[str, Any]:
    return compile_content(content, strict=strict).render(context)


class _Renderer:
    """Renders each trigger an event matched for its person, keeping what could not be rendered."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.event = {"name": name, "data": data}
        self.failed: list[dict[str, str]] = []

    async def __call__(self, person: Person, trigger: MatchedTrigger) -> TriggeredMessage | None:
        spec = trigger.message
        template_id = spec.get("template_id")
        if template_id is None:
            content, properties = spec["content"], spec["properties"]
        elif trigger.template_content is None:
            self._fail(trigger, ErrorCode.UNKNOWN_TEMPLATE, "the trigger's template no longer exists")
            return None
        else:
            content = trigger.template_content
            properties = {**(trigger.template_properties or {}), **spec["properties"]}
        if has_templates(content):
            context = {"customer": customer_of(person), "event": self.event, "data": spec["data"]}
            try:
                # Rendering also checks the result is valid content (lengths, URL schemes).
                content = await off_loop(_render, content, spec["strict"], context)
            except Unprocessable as exc:
                self._fail(trigger, exc.code, exc.message)
                return None
        return TriggeredMessage(
            trigger_id=trigger.id,
            once=trigger.reentry == "once",
            message=NewMessage(
                content=content,
                properties=properties,
                priority=spec["priority"],
                persistent=spec["persistent"],
                campaign=spec["campaign"],
                ttl_s=spec["ttl_s"],
                template_id=uuid.UUID(template_id) if template_id else None,
            ),
        )

    def _fail(self, trigger: MatchedTrigger, code: str, message: str) -> None:
        log.warning("trigger %s skipped for event %r: %s", trigger.id, self.event["name"], message)
        self.failed.append({"trigger_id": str(trigger.id), "code": str(code), "message": message})


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """The event's outcome and, for each matched trigger whose message could not render, why."""

    outcome: EventOutcome
    failed: list[dict[str, str]]


async def record_event(
    pool: asyncpg.Pool, workspace_id: int, user: str, *, match_email: bool, name: str,
    data: dict[str, Any], source: Literal["server", "device"], now: datetime | None,
) -> RecordedEvent:
    """Record the event and queue, at once, the messages of the triggers it matches.

    `user` is the person's id (created if new) or, with `match_email`, their id or email as a
    device names them; then an email-shaped `user` nobody has yet becomes a person known by that
    email, never one whose id is the email (a later send to the email reaches them).
    """
    renderer = _Renderer(name, data)
    outcome = await storage.record_person_event(
        pool, workspace_id, user, match_email=match_email, name=name, data=data,
        source=source, render=renderer, now=now, create_by_email=match_email and is_email(user),
    )
    return RecordedEvent(outcome, renderer.failed)
