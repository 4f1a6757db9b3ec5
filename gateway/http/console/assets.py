"""The console's stylesheet and scripts, served by the gateway itself (a self-hosted console works offline)."""

from __future__ import annotations

import re
from importlib import resources

from aiohttp import web

__all__ = ["asset"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}\.(css|js)$")
_TYPES = {"css": "text/css", "js": "application/javascript"}


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    folder = resources.files("gateway").joinpath("static", "console", "assets")
    if not _NAME.match(name) or not folder.joinpath(name).is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=folder.joinpath(name).read_bytes(), content_type=_TYPES[name.rsplit(".", 1)[1]], charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
