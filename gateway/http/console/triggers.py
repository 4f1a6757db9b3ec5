"""Triggers: list, create and delete, through the same schema and core calls as `/v1/triggers`.

Delete is the API's DELETE: the trigger is disabled for good and kept for the messages it queued,
so the list shows deleted triggers apart, without a button.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ... import errors
from ...core import templates, triggers
from ..keys import CLOCK, CONSOLE_SESSION, POOL
from ..params import path_uuid
from ..schemas import TriggerRequest
from .forms import confirmed, content_of, field, filter_of, validate
from .render import render
from .session import redirect

__all__ = ["create_trigger", "delete_trigger", "triggers_page"]

_REENTRY = ("every_time", "once")


async def _page(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    pool, workspace_id = request.app[POOL], request[CONSOLE_SESSION].workspace.id
    found = await triggers.list_triggers(pool, workspace_id)
    names = {t.id: t.name for t in await templates.list_templates(pool, workspace_id)}
    context: dict[str, Any] = {
        "active": [t for t in found if t.enabled], "deleted": [t for t in found if not t.enabled],
        "template_names": {str(k): v for k, v in names.items()}, "templates": names,
        "form": {}, "error": "", "error_field": "", "notice": "", "confirm_error": "",
    }
    return render(request, "triggers.html", context | extra, status=status)


async def triggers_page(request: web.Request) -> web.Response:
    notice = {"created": "Trigger created: it fires on the next matching event.",
              "deleted": "Trigger deleted: it fires no more; the messages it queued stay."}
    return await _page(request, notice=notice.get(request.query.get("done", ""), ""))


def _message_of(form: Any) -> dict[str, Any]:
    """The trigger's message: a saved template, or the content typed on the form."""
    message: dict[str, Any] = {}
    if field(form, "template_id"):
        message["template_id"] = field(form, "template_id")
    else:
        message["content"] = content_of(form)
    if field(form, "campaign"):
        message["campaign"] = field(form, "campaign")
    return message


def _field_of(message: str) -> str:
    """Which form field an API message names (`at $.message.content.title` → title), to mark it invalid."""
    for path, name in (("$.event", "event"), ("$.filter", "filter"), ("$.audience.filter", "filter"),
                       ("$.reentry", "reentry"), ("$.message.campaign", "campaign"),
                       ("$.message.template_id", "template_id"), ("$.message.content.title", "title"),
                       ("$.message.content.body", "body"), ("$.message.content", "title")):
        if path in message:
            return name
    return ""


async def create_trigger(request: web.Request) -> web.Response:
    form = await request.post()
    typed = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
    try:
        text = field(form, "filter")
        body: dict[str, Any] = {"event": field(form, "event"), "message": _message_of(form),
                                "reentry": field(form, "reentry") or "every_time"}
        if text:
            body["filter"] = filter_of(text)
            if isinstance(body["filter"], str):
                raise errors.Unprocessable('the filter is not JSON: write it as {"attribute": "plan_name", "op": '
                                           '"eq", "value": "pro"}, or leave it empty - at `$.filter`')
        checked = validate(body, TriggerRequest)
        await triggers.create_trigger(
            request.app[POOL], request[CONSOLE_SESSION].workspace.id, event=checked.event, filter=checked.filter,
            message=checked.message.new_message(), personalization=checked.message.personalization(None),
            reentry=checked.reentry, now=request.app[CLOCK].now(),
        )
    except errors.ApiError as exc:
        if exc.status >= 500:
            raise
        return await _page(request, 422, form=typed, error=exc.message, error_field=_field_of(exc.message))
    return redirect("/console/triggers?done=created")


async def delete_trigger(request: web.Request) -> web.Response:
    form = await request.post()
    trigger_id = path_uuid(request, "trigger")
    if not confirmed(form):
        return await _page(request, 422, confirm_error=str(trigger_id))
    await triggers.disable_trigger(request.app[POOL], request[CONSOLE_SESSION].workspace.id, trigger_id)
    return redirect("/console/triggers?done=deleted")
