"""Messages: the workspace's messages with their state counts (paged, newest first), one message with
its events, and recall, which calls `sends.recall_message` as `DELETE /v1/messages/{id}` does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ... import errors
from ...core import history, sends
from ..keys import CLOCK, CONSOLE_SESSION, POOL
from ..params import path_uuid
from .forms import confirmed, cursor_of, cursor_text
from .render import render
from .session import redirect

__all__ = ["STATES", "message_page", "messages_page", "recall_message"]

# The states a list can be narrowed to, in the order a message moves through them.
STATES = ("queued", "offered", "shown", "dismissed", "expired", "recalled")


async def messages_page(request: web.Request) -> web.Response:
    state = request.query.get("state", "")
    if state and state not in STATES:
        raise errors.Unprocessable(f"there is no message state {state[:40]!r}: choose one of {', '.join(STATES)}")
    page = await history.messages_page(
        request.app[POOL], request[CONSOLE_SESSION].workspace.id, request.app[CLOCK].now(),
        state=state or None, before=cursor_of(request.query.get("before", "")),
    )
    return render(request, "messages.html", {
        "page": page, "state": state, "states": STATES, "older": cursor_text(page.next),
        "paged": bool(request.query.get("before")),
    })


async def _message(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    message, events = await sends.get_message(
        request.app[POOL], request[CONSOLE_SESSION].workspace.id, path_uuid(request, "message"),
        request.app[CLOCK].now(),
    )
    context: dict[str, Any] = {"m": message, "events": events, "error": "", "notice": ""}
    return render(request, "message.html", context | extra, status=status)


async def message_page(request: web.Request) -> web.Response:
    notice = "Recalled: no device will show this message." if request.query.get("done") == "recalled" else ""
    return await _message(request, notice=notice)


async def recall_message(request: web.Request) -> web.Response:
    """Take back a message no device has shown; a refused recall says why on the message's page."""
    form = await request.post()
    message_id = path_uuid(request, "message")
    if not confirmed(form):
        return await _message(request, 422, error="Tick the confirmation to recall this message.")
    try:
        await sends.recall_message(
            request.app[POOL], request[CONSOLE_SESSION].workspace.id, message_id, request.app[CLOCK].now()
        )
    except errors.Conflict as exc:
        return await _message(request, 409, error=exc.message)
    return redirect(f"/console/messages/{message_id}?done=recalled")
