"""`GET /`: where a person who opens the printed address lands; API clients get the same links as JSON."""

from __future__ import annotations

import html
from importlib import resources

from aiohttp import web

from .views import json_response

__all__ = ["home"]

_LINKS = {"demo": "/demo", "healthz": "/healthz", "readyz": "/readyz", "metrics": "/metrics"}


async def home(request: web.Request) -> web.Response:
    endpoint = f"{request.scheme}://{request.host}"
    if "text/html" not in request.headers.get("Accept", ""):
        return json_response({"name": "mailslot", "links": {k: endpoint + v for k, v in _LINKS.items()}})
    page = resources.files("gateway").joinpath("static", "home.html").read_text()
    return web.Response(
        text=page.replace("{{ENDPOINT}}", html.escape(endpoint)),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )
