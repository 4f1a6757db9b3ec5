"""The web SDK and its analytics.js plugin are served alike: as files, cached briefly, from any origin."""

from __future__ import annotations

from importlib import resources

import pytest

from tests.helpers import Api

STATIC = resources.files("gateway").joinpath("static", "sdk", "v1")


@pytest.mark.parametrize("name", ["mailslot.js", "analytics-plugin.js"])
async def test_a_script_is_served_as_written_to_any_origin(api: Api, name: str) -> None:
    async with api.client.get(f"/sdk/v1/{name}", headers={"Origin": "https://shop.example.com"}) as resp:
        assert resp.status == 200
        assert await resp.read() == STATIC.joinpath(name).read_bytes()
        assert resp.headers["Content-Type"] == "application/javascript; charset=utf-8"
        assert resp.headers["Cache-Control"] == "public, max-age=300"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    reply = await api.request("HEAD", f"/sdk/v1/{name}", auth=False)
    assert reply.status == 200 and not reply.body


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("POST", "/sdk/v1/analytics-plugin.js", 405, "method_not_allowed"),
    ("GET", "/sdk/v1/analytics-plugin.jsx", 404, "not_found"),
    ("GET", "/sdk/v1/../v1/analytics-plugin.js%00", 404, "not_found"),
])
async def test_anything_else_is_a_json_error(api: Api, method: str, path: str, status: int, code: str) -> None:
    reply = await api.request(method, path, auth=False)
    assert (reply.status, reply.error_code) == (status, code), reply
