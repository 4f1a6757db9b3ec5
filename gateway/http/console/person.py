"""A person: look one up by id or email; their queue, devices (last poll, tier) and every message's
events, with the answer to "why didn't they see it?" in words (gateway/core/console.py)."""

from __future__ import annotations

from aiohttp import web

from ... import errors
from ...core import console
from ..keys import CONSOLE_SESSION, DEVICE_POLLS, POOL
from .render import display_now, render

__all__ = ["person_page"]


async def person_page(request: web.Request) -> web.Response:
    key = request.query.get("q", "").strip()[:255]
    if not key:
        return render(request, "person.html", {"q": "", "report": None, "error": ""})
    try:
        report = await console.person_report(
            request.app[POOL], request[CONSOLE_SESSION].workspace, key, display_now(request), request.app[DEVICE_POLLS]
        )
    except errors.NotFound as exc:
        return render(request, "person.html", {"q": key, "report": None, "error": exc.message}, status=404)
    return render(request, "person.html", {"q": key, "report": report, "error": ""})
