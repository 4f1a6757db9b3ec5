"""Broadcasts and campaigns: the list with live counts (paged, newest first), each one's delivery
funnel as a chart over time, and recall and resend, which call the same core functions as
`DELETE /v1/broadcasts/{id}` and `POST /v1/broadcasts/{id}/resend`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ... import errors
from ...core import broadcasts, history
from ...core.console import span_text
from ..keys import CLOCK, CONSOLE_SESSION, POOL
from ..params import path_uuid
from .chart import COLORS, funnel_svg
from .forms import confirmed, cursor_of, cursor_text
from .render import display_now, render
from .session import redirect

__all__ = ["broadcast_page", "broadcasts_page", "campaign_page", "recall_broadcast", "resend_broadcast"]


async def broadcasts_page(request: web.Request) -> web.Response:
    page = await history.broadcasts_page(
        request.app[POOL], request[CONSOLE_SESSION].workspace.id, request.app[CLOCK].now(),
        before=cursor_of(request.query.get("before", "")),
    )
    return render(request, "broadcasts.html", {
        "page": page, "older": cursor_text(page.next), "paged": bool(request.query.get("before")),
    })


def _notice(request: web.Request) -> str:
    count = request.query.get("n", "")
    n = count if count.isdigit() and len(count) < 10 else "some"
    done = request.query.get("done", "")
    if done == "recalled":
        copies = "copy" if n == "1" else "copies"
        return f"Recalled: {n} unshown {copies} taken back; shown ones stay with their people."
    if done == "resent":
        return f"Resent: queued again for {n} {'person' if n == '1' else 'people'}."
    return ""


async def _broadcast(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    broadcast, title, funnel = await history.broadcast_funnel(
        request.app[POOL], request[CONSOLE_SESSION].workspace.id, path_uuid(request, "broadcast"),
        request.app[CLOCK].now(), display_now(request),
    )
    context: dict[str, Any] = {
        "b": broadcast, "title": title, "funnel": funnel, "chart": funnel_svg(funnel, "Delivery funnel over time"),
        "colors": COLORS, "steps": history.FUNNEL_STEPS, "bucket": span_text(funnel.bucket_s),
        "error": "", "notice": _notice(request),
    }
    return render(request, "broadcast.html", context | extra, status=status)


async def broadcast_page(request: web.Request) -> web.Response:
    return await _broadcast(request)


async def recall_broadcast(request: web.Request) -> web.Response:
    """Take back every copy no device has shown (after the page's confirmation)."""
    form = await request.post()
    broadcast_id = path_uuid(request, "broadcast")
    if not confirmed(form):
        return await _broadcast(request, 422, error="Tick the confirmation to recall this broadcast.")
    _, recalled = await broadcasts.recall_broadcast(
        request.app[POOL], request[CONSOLE_SESSION].workspace.id, broadcast_id, request.app[CLOCK].now()
    )
    return redirect(f"/console/broadcasts/{broadcast_id}?done=recalled&n={recalled}")


async def resend_broadcast(request: web.Request) -> web.Response:
    """Queue the broadcast again for its audience as it is now; a refusal (recalled, expired, disabled) is shown."""
    form = await request.post()
    broadcast_id = path_uuid(request, "broadcast")
    if not confirmed(form):
        return await _broadcast(request, 422, error="Tick the confirmation to resend this broadcast.")
    try:
        resent = await broadcasts.resend_broadcast(
            request.app[POOL], request[CONSOLE_SESSION].workspace.id, broadcast_id, request.app[CLOCK].now()
        )
    except errors.Conflict as exc:
        return await _broadcast(request, 409, error=exc.message)
    return redirect(f"/console/broadcasts/{broadcast_id}?done=resent&n={resent.queued}")


async def campaign_page(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    if not name or len(name) > 255 or "\x00" in name:
        raise errors.Unprocessable("name a campaign: open one from the Broadcasts page")
    counts, funnel = await history.campaign_funnel(
        request.app[POOL], request[CONSOLE_SESSION].workspace.id, name, request.app[CLOCK].now(),
        display_now(request),
    )
    return render(request, "campaign.html", {
        "name": name, "counts": counts, "funnel": funnel, "colors": COLORS, "steps": history.FUNNEL_STEPS,
        "bucket": span_text(funnel.bucket_s),
        "chart": funnel_svg(funnel, f"Campaign {name}: delivery funnel over time"),
    })
