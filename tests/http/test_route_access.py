"""Who may call each route is declared in the route table, and the middlewares keep to it."""

from __future__ import annotations

import re

import pytest

from gateway.http.access import Access
from gateway.http.keys import ROUTE_ACCESS
from gateway.http.routes import ROUTES
from tests.helpers import Api


def _concrete(path: str) -> str:
    """A path that matches the route: `{id}` becomes a valid-looking UUID."""
    return re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)


def test_every_registered_route_declares_who_may_call_it(client) -> None:  # type: ignore[no-untyped-def]
    access = client.server.app[ROUTE_ACCESS]
    for resource in client.server.app.router.resources():
        for route in resource:
            assert route in access, f"{route.method} {resource.canonical} has no declared access"


SERVER_ROUTES = [(route.method, route.path) for route in ROUTES if route.access is Access.SERVER]


@pytest.mark.parametrize(("method", "path"), SERVER_ROUTES)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-key", "Basic abc", "Bearer ", "Bearer " + "k" * 300]
)
async def test_every_server_route_refuses_a_missing_or_wrong_key(
    api: Api, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = await api.request(method, _concrete(path), json={}, headers=headers, auth=False)
    assert reply.status == 401, reply
    assert reply.error_code == "unauthorized"


@pytest.mark.parametrize(("method", "path"), SERVER_ROUTES)
async def test_the_server_api_refuses_other_origins(api: Api, method: str, path: str) -> None:
    reply = await api.request(method, _concrete(path), json={}, headers={"Origin": "https://evil.example"})
    assert reply.status == 403, reply
    assert reply.error_code == "cross_origin_forbidden"


@pytest.mark.parametrize("path", [route.path for route in ROUTES if route.access is Access.DEVICE])
async def test_every_device_route_answers_a_cors_preflight(api: Api, path: str) -> None:
    reply = await api.request("OPTIONS", path, auth=False, headers={"Origin": "https://shop.example"})
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
