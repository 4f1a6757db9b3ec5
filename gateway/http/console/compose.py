"""Compose: a message with Liquid, previewed by the web SDK's own renderer as a chosen person;
sent to one person or broadcast (the audience counted first); saved and loaded as a template.

Sends and broadcasts validate through the API's request schemas and go through the same core
calls as `POST /v1/messages` and `POST /v1/broadcasts`; a refused form keeps what was typed.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from ... import errors
from ...core import broadcasts, console, sends, templates
from ...core.content import stored_content
from ..keys import CLOCK, CONSOLE_SESSION, POOL
from ..schemas import BroadcastRequest, SendRequest, TemplateRequest, parse_object
from ..views import json_response
from .forms import ACTION_SLOTS, content_of, field, filter_of, recipient_of, validate
from .render import render

__all__ = ["audience", "compose_page", "compose_submit", "preview"]

_AUDIENCES = ("ids", "emails", "all", "filter")


def _audience_spec(kind: str, text: str) -> dict[str, Any]:
    """The API's `audience` from the form's choice and its text (one id or email a line, or a JSON filter)."""
    if kind == "all":
        return {"all": True}
    if kind == "filter":
        return {"filter": filter_of(text)}
    values = [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
    return {"emails" if kind == "emails" else "ids": values or None}


async def _page(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    workspace = request[CONSOLE_SESSION].workspace
    context: dict[str, Any] = {
        "templates": await templates.list_templates(request.app[POOL], workspace.id),
        "form": {}, "error": "", "result": None, "slots": range(ACTION_SLOTS), "audiences": _AUDIENCES,
    }
    context.update(extra)
    return render(request, "compose.html", context, status=status)


def _form_of_template(template: Any) -> dict[str, str]:
    content = template.content
    form = {k: content.get(k) or "" for k in ("layout", "title", "body", "image_url", "element_id")}
    for i, action in enumerate(content.get("actions") or []):
        form |= {f"action_name_{i}": action["name"], f"action_label_{i}": action["label"],
                 f"action_url_{i}": action.get("url") or ""}
    return form | {"template_name": template.name}


async def compose_page(request: web.Request) -> web.Response:
    form: dict[str, str] = {}
    chosen = request.query.get("template", "")
    if chosen:
        try:
            template = await templates.get_template(
                request.app[POOL], request[CONSOLE_SESSION].workspace.id, uuid.UUID(chosen)
            )
        except ValueError:
            return await _page(request, 404, error="no template has this id in this workspace")
        form = _form_of_template(template)
    return await _page(request, form=form)


async def compose_submit(request: web.Request) -> web.Response:
    form = await request.post()
    typed = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
    pool, workspace_id, now = request.app[POOL], request[CONSOLE_SESSION].workspace.id, request.app[CLOCK].now()
    content = content_of(form)
    action = field(form, "do")
    result: dict[str, Any]
    campaign = {"campaign": field(form, "campaign")} if field(form, "campaign") else {}
    try:
        if action == "save":
            saved = validate({"name": field(form, "template_name"), "content": content}, TemplateRequest)
            template = await templates.create_template(
                pool, workspace_id, saved.name, stored_content(saved.content), {}, now
            )
            result = {"kind": "template", "name": template.name, "id": str(template.id)}
        elif action == "broadcast":
            spec = _audience_spec(field(form, "audience"), field(form, "audience_value"))
            many = validate({"audience": spec, "content": content, **campaign}, BroadcastRequest)
            sent = await broadcasts.send_broadcast(
                pool, workspace_id, many.audience.choice(), many.new_message(many.content),
                personalization=many.personalization(many.data), now=now,
            )
            result = {"kind": "broadcast", "id": str(sent.broadcast.id), "queued": sent.broadcast.queued}
        else:
            body = validate({"to": recipient_of(form), "content": content, **campaign}, SendRequest)
            one = await sends.send_message(
                pool, workspace_id, body.to.recipient(), body.new_message(body.content),
                personalization=body.personalization(body.data), now=now,
            )
            result = {"kind": "message", "id": str(one.message.id), "state": one.message.state}
    except errors.ApiError as exc:
        if exc.status >= 500:
            raise
        return await _page(request, 422 if exc.status != 409 else 409, form=typed, error=exc.message)
    return await _page(request, 201, form=typed, result=result)


async def preview(request: web.Request) -> web.Response:
    """`{"content", "person"}` → the content as that person would get it, for the SDK to draw."""
    body = parse_object(await request.read())
    checked = validate({"name": "preview", "content": body.get("content")}, TemplateRequest)
    rendered = await console.preview(
        request.app[POOL], request[CONSOLE_SESSION].workspace.id, stored_content(checked.content),
        str(body.get("person") or "")[:255].strip(),
    )
    return json_response({"content": rendered})


async def audience(request: web.Request) -> web.Response:
    """`{"audience": kind, "value": text}` → how many people a broadcast would reach now."""
    body = parse_object(await request.read())
    spec = _audience_spec(str(body.get("audience", "")), str(body.get("value", "")))
    checked = validate({"audience": spec, "content": {"title": "count"}}, BroadcastRequest)
    count = await console.audience_count(request.app[POOL], request[CONSOLE_SESSION].workspace.id,
                                         checked.audience.choice())
    return json_response({"count": count})
