"""The gateway's one middleware: request ids, latency, CORS, JSON errors for everything, the
connection guard's body deadline, the per-address rate limit, server-API auth and console sessions.

One coroutine frame per request instead of eight (decision 0025): a held poll keeps every
middleware's frame alive for as long as it is parked, and each frame costs a call on every short
poll. The steps run in the order the separate middlewares had (outermost first): request id,
latency, CORS, errors, connection guard, rate limit, auth, console; so CORS headers reach error
answers too, and a refused request costs no database query. The error handling is the catch-all:
whatever escapes a handler becomes the contract's JSON error; an unexpected exception is logged
with its traceback and answered as a generic 500 that tests assert never happens.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

import storage

from .. import errors
from ..errors import ErrorCode
from .access import Access
from .addresses import client_address
from .connections import CONNECTIONS, read_body_in_time
from .console.session import console_error_page, console_request
from .keys import (
    CLOCK,
    METRICS,
    RATE_LIMITER,
    ROUTE_ACCESS,
    STOPPING,
    TRUSTED_PROXIES,
    WORKSPACE,
    WORKSPACES,
)
from .views import error_body, json_response

__all__ = ["gateway_middleware"]

log = logging.getLogger("mailslot.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_WRONG_KEY = (
    "this API key is not valid: use the key `mailslot workspace create` printed "
    "(for the demo workspace, `api_key` in .mailslot/demo-workspace.json)"
)
_EXPOSED = "X-Mailslot-Next-Poll, Retry-After, X-Request-Id"
_PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, X-Request-Id",
    "Access-Control-Max-Age": "86400",
}

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


def _request_id(given: str | None) -> str:
    """The client's id when it is a sane one; else a new one (an id for logs, not a secret)."""
    if given and _REQUEST_ID.match(given):
        return given
    return f"{random.getrandbits(64):016x}"


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request's cross-cutting work, in the separate middlewares' order, in one frame."""
    app = request.app
    started = time.perf_counter()
    route = request.match_info.route
    access = app[ROUTE_ACCESS].get(route)  # None for paths no route matches (404, 405)
    guard = app.get(CONNECTIONS)
    transport = request.transport
    # The headers are complete: the connection guard's header deadline stops here.
    if guard is not None:
        guard.request_started(transport)
    try:
        if access is Access.DEVICE and request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204, headers=_PREFLIGHT)
        elif access is Access.SERVER and "Origin" in request.headers and not _same_origin(
            request.headers["Origin"], request.host
        ):
            response = _error(
                403, ErrorCode.CROSS_ORIGIN_FORBIDDEN,
                "the server API is not available to browsers on other origins; call it from your backend",
            )
        else:
            try:
                await read_body_in_time(request, guard)
                if access is Access.SERVER:
                    await _authenticate(request)
                elif route.name not in _NOT_LIMITED:
                    limiter = app[RATE_LIMITER]
                    if limiter.enabled:
                        group = "device" if access is Access.DEVICE else "public"
                        limiter.check_address(client_address(request, app[TRUSTED_PROXIES]), group)
                if access is Access.CONSOLE:
                    response = await console_request(request, handler)
                else:
                    response = await handler(request)
            except Exception as exc:  # the catch-all: see _answer_error
                response = _answer_error(request, exc)
            if response.status >= 400 and request.path.startswith("/console"):
                response = console_error_page(request, response)
            if access is Access.DEVICE:
                response.headers["Access-Control-Allow-Origin"] = "*"
                response.headers["Access-Control-Expose-Headers"] = _EXPOSED
    except web.HTTPException as exc:  # a redirect or other non-error answer raised by a handler
        exc.headers["X-Request-Id"] = _request_id(request.headers.get("X-Request-Id"))
        raise
    finally:
        if guard is not None:
            guard.request_finished(transport)
        app[METRICS].route_latency(route.name or "unmatched").observe(time.perf_counter() - started)
    # Made only now, not kept in this frame while a held poll waits (decision 0029).
    response.headers["X-Request-Id"] = _request_id(request.headers.get("X-Request-Id"))
    if app[STOPPING].is_set():
        # This process is going away: the client's next request should open a new connection,
        # which another process accepts, rather than race this one's close of idle connections.
        response.force_close()
    return response


def _answer_error(request: web.Request, exc: Exception) -> web.Response:
    """The contract's JSON error for whatever escaped; non-error HTTP answers (< 400) are re-raised."""
    if isinstance(exc, errors.ApiError):
        return _error(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        code = _HTTP_CODES.get(exc.status, ErrorCode.HTTP_ERROR)
        message = {
            404: f"no endpoint at {_shown(request.path)}; see docs/api.md for the endpoints",
            405: f"the method {_shown(request.method)} is not allowed on {_shown(request.path)}; "
                 f"use {exc.headers.get('Allow', 'another method')}",
            413: "the request body is too large",
        }.get(exc.status, exc.reason.lower())
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return _error(exc.status, code, message, headers)
    if isinstance(exc, storage.StorageUnavailable):
        log.warning("storage unavailable: %s", exc)
        return _unavailable()
    if isinstance(exc, storage.Conflict):
        return _error(409, ErrorCode.CONFLICT, str(exc))
    if storage.is_unavailable(exc):
        # A driver error that escaped translation (a connection lost mid-failover surfaces as
        # InternalClientError, a plain Exception): still "retry shortly", never a 500.
        log.warning("storage unavailable (untranslated %s): %s", type(exc).__name__, exc)
        return _unavailable()
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return _error(500, ErrorCode.INTERNAL_ERROR, "something went wrong on our side; it has been logged")


def _unavailable() -> web.Response:
    """The database is gone, busy or changing primaries: 503, and when to try again."""
    return _error(503, ErrorCode.STORAGE_UNAVAILABLE,
                  "the database is unavailable or changing over to a new primary; retry after Retry-After seconds",
                  {"Retry-After": "2"})


def _shown(text: str, limit: int = 100) -> str:
    """A part of the request quoted in a message: never long enough to swamp it."""
    return text if len(text) <= limit else text[:limit] + "…"


def _same_origin(origin: str, host: str) -> bool:
    try:
        return urlsplit(origin).netloc == host
    except ValueError:  # unparseable, such as "http://[": not ours
        return False


async def _authenticate(request: web.Request) -> None:
    """Server API: the workspace of the bearer key, counted per workspace (and per address when wrong)."""
    app = request.app
    limiter = app[RATE_LIMITER]
    address = client_address(request, app[TRUSTED_PROXIES]) if limiter.enabled else ""
    # An address that keeps guessing keys is refused before its next guess costs a query.
    limiter.check_address(address, "server", count=False)
    scheme, _, api_key = request.headers.get("Authorization", "").partition(" ")
    workspace = None
    # Keys are ASCII; a header with bytes that are not UTF-8 decodes to surrogates, which
    # cannot even be hashed.
    if scheme.lower() == "bearer" and api_key.strip() and len(api_key) <= 256 and api_key.isascii():
        workspace = await app[WORKSPACES].by_api_key(api_key.strip(), app[CLOCK].now())
    if workspace is None:
        limiter.check_address(address, "server")
        if scheme.lower() != "bearer" or not api_key.strip():
            raise errors.Unauthorized()
        raise errors.Unauthorized(_WRONG_KEY)
    limiter.check_api_key(workspace)
    request[WORKSPACE] = workspace
