"""Console sessions: sign-in (API key or one-time link), sign-out, and the check that guards pages.

Rules (decision 0020): the session token lives only in an HttpOnly, SameSite=Strict cookie scoped
to /console; the API key is read from a POSTed form, never from a URL, and never reaches a page.
Every unsafe request of a signed-in console carries the session's CSRF token (a form field or
the `X-CSRF-Token` header); the sign-in form, before any session exists, is guarded by a
double-submit cookie. A refused page request answers a page, never the API's JSON.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import orjson
from aiohttp import web

from ... import errors
from ...core import console
from ..keys import CLOCK, CONFIG, CONSOLE_SESSION, CONSOLE_TOKEN, POOL, WORKSPACES
from ..views import error_body, json_response
from .render import render

__all__ = ["console_error_page", "console_request", "link", "redirect", "sign_in", "sign_in_page", "sign_out"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COOKIE = "mailslot_console"
PRE_COOKIE = "mailslot_console_signin"  # the sign-in form's double-submit CSRF token
_SAFE = frozenset({"GET", "HEAD"})


def _cookie(response: web.StreamResponse, name: str, value: str, max_age: int, secure: bool) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console", httponly=True, samesite="Strict",
                        secure=secure)


def redirect(target: str) -> web.Response:
    """A 303 to a console path (a Response, not a raised HTTPException, so it can carry cookies)."""
    return web.Response(status=303, headers={"Location": target})


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/console/api/")


def _refuse(request: web.Request, status: int, code: errors.ErrorCode, message: str) -> web.StreamResponse:
    if _is_api(request):
        return json_response(error_body(code, message), status=status)
    return render(request, "error.html", {"title": "Not allowed", "message": message}, status=status)


async def console_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A console route's request: it needs a live session, and unsafe methods its CSRF token; core
    errors become pages. The gateway's middleware calls it for CONSOLE routes only."""
    token = request.cookies.get(COOKIE, "")
    found = await console.session(request.app[POOL], token, request.app[CLOCK].now())
    if found is None:
        if request.method in _SAFE and not _is_api(request):
            return redirect("/console/sign-in?next=" + quote(request.path_qs, safe=""))
        return _refuse(request, 401, errors.ErrorCode.CONSOLE_SIGN_IN_REQUIRED,
                       "your console session has ended or was never opened: sign in again")
    if request.method not in _SAFE:
        given = request.headers.get("X-CSRF-Token", "")
        if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            given = str((await request.post()).get("csrf", ""))
        if not hmac.compare_digest(given.encode(), found.csrf_token.encode()):
            return _refuse(request, 403, errors.ErrorCode.CSRF_TOKEN_INVALID,
                           "this form is out of date or did not come from the console: reload the page and try again")
    request[CONSOLE_SESSION] = found
    request[CONSOLE_TOKEN] = token
    try:
        return await handler(request)
    except errors.ApiError as exc:
        if _is_api(request):
            raise
        return render(request, "error.html", {"title": "That did not work", "message": exc.message},
                      status=exc.status)


def console_error_page(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """A console page refused before the console's own code runs (a body too large, an unknown
    path, storage unavailable) answers an error page with the same message and status, never the
    API's JSON. The gateway's middleware passes every console-path error answer through here.
    """
    if (response.status < 400 or not request.path.startswith("/console") or _is_api(request)
            or response.content_type != "application/json" or not isinstance(response, web.Response)):
        return response
    try:
        message = str(orjson.loads(response.body or b"{}")["error"]["message"])  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return response
    page = render(request, "error.html", {"title": "That did not work", "message": message},
                  status=response.status)
    for name in ("Retry-After", "Allow", "X-Request-Id"):
        if name in response.headers:
            page.headers[name] = response.headers[name]
    return page


def _safe_next(value: str) -> str:
    """Only a console path: never an open redirect to another site."""
    if value.startswith("/console") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console"


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    return _sign_in_form(request, "", 200)


def _sign_in_form(request: web.Request, message: str, status: int) -> web.StreamResponse:
    pre = secrets.token_urlsafe(24)
    response = render(request, "sign_in.html", {
        "csrf": pre, "next": _safe_next(request.query.get("next", "/console")), "error": message,
    }, status=status, signed_in=False)
    _cookie(response, PRE_COOKIE, pre, 3600, request.secure)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    expected = request.cookies.get(PRE_COOKIE, "")
    given = str(form.get("csrf", ""))
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return _sign_in_form(request, "the sign-in form expired: enter your API key again", 403)
    api_key = str(form.get("api_key", "")).strip()
    workspace = None
    if api_key and len(api_key) <= 256 and api_key.isascii():
        workspace = await request.app[WORKSPACES].by_api_key(api_key)
    if workspace is None:
        message = ("enter your workspace's API key" if not api_key else
                   "this API key is not valid: use the key `mailslot workspace create` printed "
                   "(for the demo workspace, `api_key` in .mailslot/demo-workspace.json)")
        return _sign_in_form(request, message, 401)
    lifetime = request.app[CONFIG].console_session_s
    token = await console.sign_in(request.app[POOL], workspace, request.app[CLOCK].now(), lifetime)
    return _signed_in(request, token, _safe_next(str(form.get("next", "/console"))))


def _signed_in(request: web.Request, token: str, target: str) -> web.StreamResponse:
    response = redirect(target)
    _cookie(response, COOKIE, token, request.app[CONFIG].console_session_s, request.secure)
    response.del_cookie(PRE_COOKIE, path="/console")
    return response


async def link(request: web.Request) -> web.StreamResponse:
    """GET /console/link#token is a page whose script POSTs the token, so it never reaches a log or a Referer."""
    if request.method == "GET":
        pre = secrets.token_urlsafe(24)
        response = render(request, "link.html", {"csrf": pre}, signed_in=False)
        _cookie(response, PRE_COOKIE, pre, 3600, request.secure)
        return response
    form = await request.post()
    expected = request.cookies.get(PRE_COOKIE, "")
    if not expected or not hmac.compare_digest(str(form.get("csrf", "")).encode(), expected.encode()):
        return _sign_in_form(request, "this sign-in link did not come from a console page: open it again", 403)
    token = str(form.get("token", ""))
    try:
        session_token = await console.open_link(
            request.app[POOL], token[:128], request.app[CLOCK].now(), request.app[CONFIG].console_session_s
        )
    except errors.Unauthorized as exc:
        return _sign_in_form(request, exc.message, 401)
    return _signed_in(request, session_token, "/console")


async def sign_out(request: web.Request) -> web.StreamResponse:
    await console.sign_out(request.app[POOL], request[CONSOLE_TOKEN])
    response = redirect("/console/sign-in")
    response.del_cookie(COOKIE, path="/console")
    return response
