"""Operations endpoints for load balancers, operators and Prometheus."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

import storage

from ..errors import ErrorCode, ServiceUnavailable
from .keys import METRICS, POOL, STOPPING
from .views import json_response

__all__ = ["healthz", "metrics", "readyz"]


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving; says nothing about the database."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: not shutting down, and the database answers."""
    if request.app[STOPPING].is_set():
        raise ServiceUnavailable(
            "this process is shutting down", code=ErrorCode.SHUTTING_DOWN, headers={"Retry-After": "1"}
        )
    try:
        await storage.check_ready(request.app[POOL])
    except storage.StorageUnavailable:
        raise ServiceUnavailable("the database does not answer", headers={"Retry-After": "2"}) from None
    return json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
