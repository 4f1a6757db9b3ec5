"""Pages of the console: Jinja2 templates from the package's `static/console/templates`, autoescaped.

Every page is answered with a strict Content-Security-Policy: scripts and styles come only from
the gateway itself (no CDN: a self-hosted console works offline); inline styles are allowed
because the web SDK's renderer injects its own stylesheet for the live preview.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

from ...core.console import span_text
from ..keys import CLOCK, CONSOLE_SESSION, CONSOLE_TEMPLATES

__all__ = ["SECURITY_HEADERS", "display_now", "environment", "render"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https: http:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        return "in " + span_text(-seconds)
    return span_text(seconds) + " ago"


def display_now(request: web.Request) -> datetime:
    """The instant pages say "4 min ago" from: the app's clock, or (in production, where the database
    keeps time and the clock says None) this host's."""
    return request.app[CLOCK].now() or datetime.now(UTC)


def environment() -> jinja2.Environment:
    """The template environment, built once per app (a template error is a startup error)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway", "static/console/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


def render(
    request: web.Request, name: str, context: dict[str, Any], *, status: int = 200, signed_in: bool = True
) -> web.Response:
    session = request.get(CONSOLE_SESSION) if signed_in else None
    now = display_now(request)
    page = request.app[CONSOLE_TEMPLATES].get_template(name).render(
        session=session,
        workspace=session.workspace if session else None,
        csrf=context.pop("csrf", session.csrf_token if session else ""),
        path=request.path,
        now=now,
        ago=lambda value: _ago(value, now),
        **context,
    )
    return web.Response(text=page, status=status, content_type="text/html", headers=SECURITY_HEADERS)
