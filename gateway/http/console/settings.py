"""The In-App settings page: site id and snippet, platforms, Connect your app, a test message,
Enable / Disable, identity proof and poll intervals. Each form makes one core call, as the API does.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from aiohttp import web

from ... import errors
from ...core import console, sends, setup, workspaces
from ..keys import CLOCK, CONSOLE_SESSION, POOL, WORKSPACES
from ..params import path_uuid
from ..schemas import TestMessageRequest, WorkspacePatch
from ..views import json_response, server_message, setup_view
from .forms import field, validate
from .render import render
from .session import redirect

__all__ = ["message_state", "settings_page", "setup_status", "switch_in_app", "test_message", "update_delivery"]

_LAYOUTS = ("modal", "banner_top", "banner_bottom", "inline")


def _snippet(request: web.Request, site_id: str) -> str:
    text = resources.files("gateway").joinpath("static", "sdk", "v1", "snippet.js").read_text()
    return text.replace("{{ENDPOINT}}", f"{request.scheme}://{request.host}").replace("{{SITE_ID}}", site_id)


async def _page(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    workspace = request[CONSOLE_SESSION].workspace  # read with the session, so never stale
    pool, now = request.app[POOL], request.app[CLOCK].now()
    context: dict[str, Any] = {
        "ws": workspace,
        "setup": setup_view(await setup.workspace_setup(pool, workspace.id), workspace.identity_mode),
        "pending": await console.disable_preview(pool, workspace.id, now),
        "snippet": _snippet(request, workspace.site_id),
        "endpoint": f"{request.scheme}://{request.host}",
        "layouts": _LAYOUTS,
        "test_error": "", "test_sent": None, "test_form": {}, "delivery_error": "", "notice": "",
    }
    context.update(extra)
    return render(request, "settings.html", context, status=status)


async def settings_page(request: web.Request) -> web.Response:
    notice = {"enabled": "In-app messaging is on.", "saved": "Saved."}.get(request.query.get("done", ""), "")
    recalled = request.query.get("recalled", "")
    if request.query.get("done") == "disabled":
        notice = f"In-app messaging is off; {recalled if recalled.isdigit() else 'no'} queued messages were cancelled."
    return await _page(request, notice=notice)


async def test_message(request: web.Request) -> web.Response:
    form = await request.post()
    kind = "email" if field(form, "to_kind") == "email" else "id"
    values = {name: field(form, name) for name in ("to", "to_kind", "layout", "title", "body")}
    try:
        body = validate({"to": {kind: field(form, "to")}}, TestMessageRequest)
        content = {"layout": field(form, "layout") or "modal"}
        if content["layout"] not in _LAYOUTS:
            raise errors.Unprocessable("choose a layout from the list")
        if content["layout"] == "inline":
            raise errors.Unprocessable("a test message cannot be inline: it needs an element of your page")
        for name in ("title", "body"):
            if field(form, name):
                content[name] = field(form, name)[:1000]
        sent = await setup.send_test_message(
            request.app[POOL], request[CONSOLE_SESSION].workspace.id, body.to.recipient(),
            request.app[CLOCK].now(), content=content,
        )
    except errors.ApiError as exc:
        return await _page(request, 422 if exc.status < 500 else exc.status, test_error=exc.message, test_form=values)
    return await _page(request, 201, test_sent=sent.message, test_form=values)


async def switch_in_app(request: web.Request) -> web.Response:
    """Enable, or disable (which cancels every queued message: the page asked for confirmation first)."""
    form = await request.post()
    enable = field(form, "enabled") == "true"
    if not enable and field(form, "confirm") != "yes":
        return await _page(request, 422, notice="Tick the confirmation to disable in-app messaging.")
    _, recalled = await workspaces.update_workspace(
        request.app[POOL], request.app[WORKSPACES], request[CONSOLE_SESSION].workspace.id,
        in_app_enabled=enable, now=request.app[CLOCK].now(),
    )
    return redirect("/console?done=enabled" if enable else f"/console?done=disabled&recalled={recalled}")


async def update_delivery(request: web.Request) -> web.Response:
    """Identity proof and poll intervals, validated as `PATCH /v1/workspace` validates them."""
    form = await request.post()
    intervals: dict[str, Any] = {}
    try:
        for name in ("active_s", "inactive_s", "low_s", "recent_days"):
            text = field(form, name)
            if not text.isdigit() or len(text) > 9:
                raise errors.Unprocessable(f"`{name}` must be a whole number - at `$.intervals.{name}`")
            intervals[name] = int(text)
        patch = validate({"identity_mode": field(form, "identity_mode"), "intervals": intervals}, WorkspacePatch)
        assert patch.intervals is not None
        await workspaces.update_workspace(
            request.app[POOL], request.app[WORKSPACES], request[CONSOLE_SESSION].workspace.id,
            identity_mode=patch.identity_mode, active_s=patch.intervals.active_s,
            inactive_s=patch.intervals.inactive_s, low_s=patch.intervals.low_s,
            recent_days=patch.intervals.recent_days, now=request.app[CLOCK].now(),
        )
    except errors.Unprocessable as exc:
        return await _page(request, 422, delivery_error=exc.message)
    return redirect("/console?done=saved")


async def setup_status(request: web.Request) -> web.Response:
    """Connect your app, for the page's live update."""
    workspace = request[CONSOLE_SESSION].workspace
    status = await setup.workspace_setup(request.app[POOL], workspace.id)
    return json_response(setup_view(status, workspace.identity_mode), headers={"Cache-Control": "no-store"})


async def message_state(request: web.Request) -> web.Response:
    """One message with its events, for a page that follows its state."""
    message, events = await sends.get_message(
        request.app[POOL], request[CONSOLE_SESSION].workspace.id, path_uuid(request, "message"),
        request.app[CLOCK].now(),
    )
    return json_response(server_message(message, events), headers={"Cache-Control": "no-store"})
