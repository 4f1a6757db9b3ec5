"""Event triggers: defining them (server API) and the events that fire them, from the backend and from devices.

Rules: a trigger's content templates are parsed when the trigger is created, so a broken one is
a 422 then; its message is rendered for each matching event, with `customer` (the person),
`event` (`name`, `data`) and `data` (the trigger's own values). A message that cannot render
for this person and event is skipped and reported, never queued broken. Event data from devices
is the device's word: it is only ever rendered as text.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

from aiohttp import web

import storage
from storage import EventOutcome, MatchedTrigger, Person, Trigger, TriggeredMessage

from .device_api import device_workspace
from .errors import NotFound, Unprocessable
from .filters import compile_filter
from .keys import CLOCK, POOL, WORKSPACE
from .paths import path_person_id, path_uuid
from .personalize import compile_content, customer_of, has_templates
from .render import json_response
from .schemas import PersonEventRequest, TrackRequest, TriggerMessage, TriggerRequest, parse_body
from .sends import DEFAULT_TTL_S, content_of

__all__ = ["create_trigger", "disable_trigger", "list_triggers", "record_person_event", "track"]

log = logging.getLogger("mailslot.gateway.triggers")


def _view(trigger: Trigger) -> dict[str, Any]:
    return {
        "id": str(trigger.id),
        "event": trigger.event,
        "filter": trigger.filter["source"] if trigger.filter else None,
        "message": trigger.message,
        "reentry": trigger.reentry,
        "enabled": trigger.enabled,
        "created_at": trigger.created_at,
    }


def _message_spec(message: TriggerMessage) -> dict[str, Any]:
    """The message as the trigger stores it, every field present; content templates are parsed now."""
    if (message.content is None) == (message.template_id is None):
        raise Unprocessable("`message` needs exactly one of `content` or `template_id` - at `$.message`")
    spec: dict[str, Any] = {
        "data": message.data,
        "properties": message.properties,
        "priority": message.priority,
        "persistent": message.persistent,
        "ttl_s": message.ttl_s or DEFAULT_TTL_S,
        "campaign": message.campaign,
        "strict": message.strict,
    }
    if message.content is None:
        return {"template_id": str(message.template_id), **spec}
    if message.content.title is None and message.content.body is None:
        raise Unprocessable("content needs a `title` or a `body` - at `$.message.content`")
    if message.content.layout == "inline" and message.content.element_id is None:
        raise Unprocessable("an inline message needs `element_id` - at `$.message.content.element_id`")
    content = content_of(message.content)
    compile_content(content, strict=message.strict)
    return {"content": content, **spec}


async def create_trigger(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), TriggerRequest)
    spec = _message_spec(body.message)
    compiled = None
    if body.filter is not None:
        compiled = {"source": body.filter, **compile_filter(body.filter).as_json()}
    trigger = await storage.create_trigger(
        request.app[POOL],
        request[WORKSPACE].id,
        event=body.event,
        filter=compiled,
        message=spec,
        reentry=body.reentry,
        template_id=body.message.template_id,
        now=request.app[CLOCK].now(),
    )
    if trigger is None:
        raise Unprocessable("no template has this id in this workspace - at `$.message.template_id`",
                            code="unknown_template")
    return json_response(_view(trigger), status=201)


async def list_triggers(request: web.Request) -> web.Response:
    triggers = await storage.list_triggers(request.app[POOL], request[WORKSPACE].id)
    return json_response({"triggers": [_view(t) for t in triggers]})


async def disable_trigger(request: web.Request) -> web.Response:
    trigger_id = path_uuid(request, "trigger")
    trigger = await storage.disable_trigger(request.app[POOL], request[WORKSPACE].id, trigger_id)
    if trigger is None:
        raise NotFound("no trigger has this id in this workspace", code="unknown_trigger")
    return json_response(_view(trigger))


class _Renderer:
    """Renders each trigger an event matched for its person, keeping what could not be rendered."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.event = {"name": name, "data": data}
        self.failed: list[dict[str, str]] = []

    def __call__(self, person: Person, trigger: MatchedTrigger) -> TriggeredMessage | None:
        spec = trigger.message
        template_id = spec.get("template_id")
        if template_id is None:
            content, properties = spec["content"], spec["properties"]
        elif trigger.template_content is None:
            self._fail(trigger, "unknown_template", "the trigger's template no longer exists")
            return None
        else:
            content = trigger.template_content
            properties = {**(trigger.template_properties or {}), **spec["properties"]}
        if has_templates(content):
            context = {"customer": customer_of(person), "event": self.event, "data": spec["data"]}
            try:
                # Rendering also checks the result is valid content (lengths, URL schemes).
                content = compile_content(content, strict=spec["strict"]).render(context)
            except Unprocessable as exc:
                self._fail(trigger, exc.code, exc.message)
                return None
        return TriggeredMessage(
            trigger_id=trigger.id,
            once=trigger.reentry == "once",
            content=content,
            properties=properties,
            priority=spec["priority"],
            persistent=spec["persistent"],
            campaign=spec["campaign"],
            ttl_s=spec["ttl_s"],
            template_id=uuid.UUID(template_id) if template_id else None,
        )

    def _fail(self, trigger: MatchedTrigger, code: str, message: str) -> None:
        log.warning("trigger %s skipped for event %r: %s", trigger.id, self.event["name"], message)
        self.failed.append({"trigger_id": str(trigger.id), "code": code, "message": message})


async def _record_event(
    request: web.Request, workspace_id: int, user: str, *, match_email: bool, name: str,
    data: dict[str, Any], source: Literal["server", "device"],
) -> tuple[EventOutcome, list[dict[str, str]]]:
    """Record the event and queue, at once, the messages of the triggers it matches."""
    renderer = _Renderer(name, data)
    outcome = await storage.record_person_event(
        request.app[POOL], workspace_id, user, match_email=match_email, name=name, data=data,
        source=source, render=renderer, now=request.app[CLOCK].now(),
    )
    return outcome, renderer.failed


async def record_person_event(request: web.Request) -> web.Response:
    """An event from the backend; the person (by id) is created if new."""
    key = path_person_id(request)
    body = parse_body(await request.read(), PersonEventRequest)
    outcome, failed = await _record_event(
        request, request[WORKSPACE].id, key, match_email=False, name=body.name, data=body.data or {},
        source="server",
    )
    return json_response({"accepted": True, "queued": [str(i) for i in outcome.queued], "failed": failed})


async def track(request: web.Request) -> web.Response:
    """An event from a device (the SDK's track), under the identity proof the workspace asks for."""
    body = parse_body(await request.read(), TrackRequest)
    workspace = await device_workspace(request, body.site_id, body.user, body.user_hash)
    outcome, _ = await _record_event(
        request, workspace.id, body.user, match_email=True, name=body.name, data=body.data or {},
        source="device",
    )
    return json_response({"accepted": True, "queued": [str(i) for i in outcome.queued]})
