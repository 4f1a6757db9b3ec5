"""Cross-cutting concerns: request ids, JSON errors for everything, rate limits, server-API auth, CORS.

Order (outermost first): request id, CORS, errors, the per-address rate limit, auth, so CORS
headers reach error answers too, and a refused request costs no database query.
The error middleware is the catch-all: whatever escapes a handler becomes the contract's JSON
error; an unexpected exception is logged with its traceback and answered as a generic 500 that
tests assert never happens.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

import storage

from .. import errors
from ..errors import ErrorCode
from .access import Access
from .addresses import client_address
from .keys import (
    CLOCK,
    METRICS,
    RATE_LIMITER,
    REQUEST_ID,
    ROUTE_ACCESS,
    STOPPING,
    TRUSTED_PROXIES,
    WORKSPACE,
    WORKSPACES,
)
from .views import error_body, json_response

__all__ = [
    "auth_middleware",
    "cors_middleware",
    "error_middleware",
    "metrics_middleware",
    "rate_limit_middleware",
    "request_id_middleware",
]

log = logging.getLogger("mailslot.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_WRONG_KEY = (
    "this API key is not valid: use the key `mailslot workspace create` printed "
    "(for the demo workspace, `api_key` in .mailslot/demo-workspace.json)"
)
_EXPOSED = "X-Mailslot-Next-Poll, Retry-After, X-Request-Id"

# Probes and scrapes: a load balancer and Prometheus call these often, each from one address.
_NOT_LIMITED = frozenset({"ops.healthz", "ops.readyz", "ops.metrics"})

_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.BODY_TOO_LARGE,
}


def _error(status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error_body(code, message), status=status, headers=headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = request_id
        raise
    response.headers["X-Request-Id"] = request_id
    if request.app[STOPPING].is_set():
        # This process is going away: the client's next request should open a new connection,
        # which another process accepts, rather than race this one's close of idle connections.
        response.force_close()
    return response


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency per named route; unmatched paths are one label, so scanners cannot grow the series."""
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        route = _route_name(request) or "unmatched"
        request.app[METRICS].request_latency.labels(route).observe(time.perf_counter() - started)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return _error(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, ErrorCode.HTTP_ERROR)
        message = {
            404: f"no endpoint at {_shown(request.path)}; see docs/api.md for the endpoints",
            405: f"the method {_shown(request.method)} is not allowed on {_shown(request.path)}; "
                 f"use {exc.headers.get('Allow', 'another method')}",
            413: "the request body is too large",
        }.get(exc.status, exc.reason.lower())
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return _error(exc.status, code, message, headers)
    except storage.StorageUnavailable as exc:
        log.warning("storage unavailable: %s", exc)
        return _unavailable()
    except storage.Conflict as exc:
        return _error(409, ErrorCode.CONFLICT, str(exc))
    except Exception as exc:
        if storage.is_unavailable(exc):
            # A driver error that escaped translation (a connection lost mid-failover surfaces as
            # InternalClientError, a plain Exception): still "retry shortly", never a 500.
            log.warning("storage unavailable (untranslated %s): %s", type(exc).__name__, exc)
            return _unavailable()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, ErrorCode.INTERNAL_ERROR, "something went wrong on our side; it has been logged")


def _unavailable() -> web.Response:
    """The database is gone, busy or changing primaries: 503, and when to try again."""
    return _error(503, ErrorCode.STORAGE_UNAVAILABLE,
                  "the database is unavailable or changing over to a new primary; retry after Retry-After seconds",
                  {"Retry-After": "2"})


def _shown(text: str, limit: int = 100) -> str:
    """A part of the request quoted in a message: never long enough to swamp it."""
    return text if len(text) <= limit else text[:limit] + "…"


def _route_name(request: web.Request) -> str:
    return request.match_info.route.name or ""


def _access(request: web.Request) -> Access | None:
    """Who may call the matched route; None for paths no route matches (404, 405)."""
    return request.app[ROUTE_ACCESS].get(request.match_info.route)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The device API answers any origin; the server API refuses cross-origin browsers."""
    access = _access(request)
    origin = request.headers.get("Origin")
    if access is Access.DEVICE:
        if request.method == "OPTIONS":
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, X-Request-Id",
                "Access-Control-Max-Age": "86400",
            })
        response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED
        return response
    if access is Access.SERVER and origin is not None and not _same_origin(origin, request.host):
        # Returned, not raised: this middleware sits outside the error middleware.
        return _error(
            403, ErrorCode.CROSS_ORIGIN_FORBIDDEN,
            "the server API is not available to browsers on other origins; call it from your backend",
        )
    return await handler(request)


def _same_origin(origin: str, host: str) -> bool:
    try:
        return urlsplit(origin).netloc == host
    except ValueError:  # unparseable, such as "http://[": not ours
        return False


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The per-address limit on what no API key vouches for: the device API, public pages, unknown paths.

    Server-API requests are counted per workspace once their key is known (auth middleware),
    and against their address only when the key is wrong.
    """
    access = _access(request)
    if access is not Access.SERVER and _route_name(request) not in _NOT_LIMITED:
        limiter = request.app[RATE_LIMITER]
        if limiter.enabled:
            group = "device" if access is Access.DEVICE else "public"
            limiter.check_address(client_address(request, request.app[TRUSTED_PROXIES]), group)
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _access(request) is Access.SERVER:
        limiter = request.app[RATE_LIMITER]
        address = client_address(request, request.app[TRUSTED_PROXIES]) if limiter.enabled else ""
        # An address that keeps guessing keys is refused before its next guess costs a query.
        limiter.check_address(address, "server", count=False)
        scheme, _, api_key = request.headers.get("Authorization", "").partition(" ")
        workspace = None
        # Keys are ASCII; a header with bytes that are not UTF-8 decodes to surrogates, which
        # cannot even be hashed.
        if scheme.lower() == "bearer" and api_key.strip() and len(api_key) <= 256 and api_key.isascii():
            workspace = await request.app[WORKSPACES].by_api_key(api_key.strip(), request.app[CLOCK].now())
        if workspace is None:
            limiter.check_address(address, "server")
            if scheme.lower() != "bearer" or not api_key.strip():
                raise errors.Unauthorized()
            raise errors.Unauthorized(_WRONG_KEY)
        limiter.check_api_key(workspace)
        request[WORKSPACE] = workspace
    return await handler(request)
