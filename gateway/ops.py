"""Operations endpoints for load balancers and operators."""

from __future__ import annotations

from aiohttp import web

import storage

from .errors import ServiceUnavailable
from .keys import POOL
from .render import json_response

__all__ = ["healthz", "readyz"]


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving; says nothing about the database."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: the database answers."""
    try:
        await storage.check_ready(request.app[POOL])
    except storage.StorageUnavailable:
        raise ServiceUnavailable("the database does not answer", headers={"Retry-After": "2"}) from None
    return json_response({"status": "ready"})
