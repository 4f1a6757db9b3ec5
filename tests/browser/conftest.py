"""Browser fixtures: Debian's chromium driven by Playwright, and a customer site on another origin.

Playwright's own browser download cannot work on our machines, so the browser is the `chromium`
Debian package, launched by its path (`MAILSLOT_CHROMIUM` overrides it). The tests need a running
gateway from the `live_gateway` fixture (`url`, `site_id`, `api_key`, `identity_secret`).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright
from yarl import URL

CHROMIUM = os.environ.get("MAILSLOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path; a missing browser fails the tests (they must run in CI, not skip)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (or set MAILSLOT_CHROMIUM)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """A headless chromium per test (function scope keeps it on the test's event loop)."""
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# The loader snippet from its one source, the file docs/sdk.md shows and /demo embeds.
SNIPPET = resources.files("gateway").joinpath("static", "sdk", "v1", "snippet.js").read_text()

# The customer's page: the documented snippet, then identify() with the `user` query parameter.
# Every SDK callback lands in window.__events so tests can read what the page saw.
APP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Customer app</title>
<script>
{{SNIPPET}}window.__events = [];
["shown", "action", "dismissed", "error"].forEach(function (k) {
  mailslot.on(k, function (e) {
    window.__events.push([k, e.message ? e.message.id : null, e.action || e.code || null]);
  });
});
var params = new URLSearchParams(location.search);
if (params.has("user")) mailslot.identify(params.get("user"), JSON.parse(params.get("attrs") || "null"));
</script></head>
<body style="font-family: system-ui; margin: 40px">
<h1>Customer app</h1>
<div id="mailslot-inline"></div>
</body></html>
"""

THANKS_PAGE = "<!doctype html><title>Thanks</title><h1 id='thanks'>Thanks</h1>"

# A hero image for the demo screenshot, served locally (the machines reach no outside hosts).
HERO_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="880" height="360" viewBox="0 0 880 360">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="#6366f1"/><stop offset="1" stop-color="#06b6d4"/></linearGradient></defs>
<rect width="880" height="360" fill="url(#g)"/>
<circle cx="720" cy="70" r="140" fill="#fff" opacity=".10"/>
<circle cx="140" cy="330" r="120" fill="#fff" opacity=".08"/>
<g transform="translate(340 95)" fill="none" stroke="#fff" stroke-width="10" stroke-linejoin="round">
<path d="M0 50 L100 0 L200 50 L100 100 Z" fill="#fff" fill-opacity=".18"/>
<path d="M0 50 V140 L100 190 V100"/><path d="M200 50 V140 L100 190"/></g>
</svg>"""


@dataclass(frozen=True)
class CustomerSite:
    """A web site on its own origin that embeds the snippet, as a customer's would."""

    url: str

    def app_url(self, user: str | None, attributes: dict[str, Any] | None = None) -> str:
        """The app as `user`, or (None) as an anonymous visitor who has not signed in."""
        query = ({"user": user} if user is not None else {}) | ({"attrs": json.dumps(attributes)} if attributes else {})
        return str(URL(f"{self.url}/app").with_query(query))


@pytest.fixture
async def customer_site(live_gateway: Any) -> AsyncIterator[CustomerSite]:
    page = APP_PAGE.replace("{{SNIPPET}}", SNIPPET)
    for token, value in (("{{ENDPOINT}}", live_gateway.url), ("{{SITE_ID}}", live_gateway.site_id)):
        page = page.replace(token, json.dumps(value)[1:-1])  # inside the snippet's JS strings

    async def app_page(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def thanks(request: web.Request) -> web.Response:
        return web.Response(text=THANKS_PAGE, content_type="text/html")

    async def hero(request: web.Request) -> web.Response:
        return web.Response(text=HERO_SVG, content_type="image/svg+xml")

    app = web.Application()
    app.router.add_get("/app", app_page)
    app.router.add_get("/thanks", thanks)
    app.router.add_get("/hero.svg", hero)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield CustomerSite(url=f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


class ServerApi:
    """The product's backend: the server API with the workspace's secret key."""

    def __init__(self, session: aiohttp.ClientSession, gateway: Any) -> None:
        self._session = session
        self._url = gateway.url
        self._headers = {"Authorization": f"Bearer {gateway.api_key}"}

    async def send(self, user: str, content: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"to": {"id": user}, "content": content, **fields}
        async with self._session.post(f"{self._url}/v1/messages", json=body, headers=self._headers) as resp:
            assert resp.status == 201, await resp.text()
            return dict(await resp.json())

    async def message(self, message_id: str) -> dict[str, Any]:
        async with self._session.get(f"{self._url}/v1/messages/{message_id}", headers=self._headers) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())

    async def broadcast(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self._session.post(f"{self._url}/v1/broadcasts", json=body, headers=self._headers) as resp:
            assert resp.status == 201, await resp.text()
            return dict(await resp.json())

    async def broadcast_view(self, broadcast_id: str) -> dict[str, Any]:
        async with self._session.get(f"{self._url}/v1/broadcasts/{broadcast_id}", headers=self._headers) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())

    async def messages(self, user: str) -> list[dict[str, Any]]:
        async with self._session.get(f"{self._url}/v1/people/{user}/messages", headers=self._headers) as resp:
            if resp.status == 404:
                return []
            assert resp.status == 200, await resp.text()
            return list((await resp.json())["messages"])

    async def person(self, user: str) -> dict[str, Any] | None:
        async with self._session.get(f"{self._url}/v1/people/{user}/messages", headers=self._headers) as resp:
            if resp.status == 404:
                return None
            assert resp.status == 200, await resp.text()
            return dict((await resp.json())["person"])


@pytest.fixture
async def server_api(live_gateway: Any) -> AsyncIterator[ServerApi]:
    async with aiohttp.ClientSession() as session:
        yield ServerApi(session, live_gateway)


@dataclass(frozen=True)
class LiveGateway:
    url: str
    site_id: str
    api_key: str
    identity_secret: str


@pytest.fixture
async def live_gateway(config: Any) -> AsyncIterator[LiveGateway]:
    """The real gateway on a real port (the browser needs one), with the demo workspace."""
    import storage
    from gateway import create_app
    from gateway.http.keys import POOL

    app = create_app(config)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        credentials = await storage.create_workspace(app[POOL], "demo", identity_mode="off")
        yield LiveGateway(
            url=f"http://127.0.0.1:{port}",
            site_id=credentials.workspace.site_id,
            api_key=credentials.api_key,
            identity_secret=credentials.workspace.identity_secret,
        )
    finally:
        await runner.cleanup()
