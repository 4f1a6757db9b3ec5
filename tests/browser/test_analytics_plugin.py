"""The analytics.js plugin in a real headless chromium with Segment's own analytics-next bundle.

The bundle is the npm package's standalone file (`make test` installs it from package-lock.json),
loaded by Segment's snippet from a local copy: the test site answers the CDN's paths (the script,
its chunks, the source's settings) and stands in for Segment's collector, and every request to
any host but 127.0.0.1 is refused and recorded, so nothing reaches the internet. The page calls
only analytics.js; the plugin drives mailslot. Every wait has a timeout; no test sleeps.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, Request, Response, Route, expect
from playwright.async_api import Error as PlaywrightError
from yarl import URL

from gateway.core.identity import user_hash

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import ServerApi

pytestmark = pytest.mark.browser

APPEAR_MS = 5_000
WRITE_KEY = "mailslotTestWriteKey"
BUNDLES = Path(__file__).resolve().parents[2] / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"

# Segment's analytics.js snippet 5.2.1 as its docs give it, with two changes for a machine that
# reaches no CDN: the script comes from {{CDN}} instead of https://cdn.segment.com, and `_cdn` says
# so to the bundle (it loads its chunks and the source's settings from there).
SEGMENT_SNIPPET = """!function(){var i="analytics",analytics=window[i]=window[i]||[];if(!analytics.initialize)if(analytics.invoked)window.console&&console.error&&console.error("Segment snippet included twice.");else{analytics.invoked=!0;analytics.methods=["trackSubmit","trackClick","trackLink","trackForm","pageview","identify","reset","group","track","ready","alias","debug","page","screen","once","off","on","addSourceMiddleware","addIntegrationMiddleware","setAnonymousId","addDestinationMiddleware","register"];analytics.factory=function(e){return function(){if(window[i].initialized)return window[i][e].apply(window[i],arguments);var n=Array.prototype.slice.call(arguments);if(["track","screen","alias","group","page","identify"].indexOf(e)>-1){var c=document.querySelector("link[rel='canonical']");n.push({__t:"bpc",c:c&&c.getAttribute("href")||void 0,p:location.pathname,u:location.href,s:location.search,t:document.title,r:document.referrer})}n.unshift(e);analytics.push(n);return analytics}};for(var n=0;n<analytics.methods.length;n++){var key=analytics.methods[n];analytics[key]=analytics.factory(key)}analytics.load=function(key,n){var t=document.createElement("script");t.type="text/javascript";t.async=!0;t.setAttribute("data-global-segment-analytics-key",i);t.src="{{CDN}}/analytics.js/v1/" + key + "/analytics.min.js";var r=document.getElementsByTagName("script")[0];r.parentNode.insertBefore(t,r);analytics._loadOptions=n};analytics._writeKey="{{WRITE_KEY}}";analytics._cdn="{{CDN}}";;analytics.SNIPPET_VERSION="5.2.1";
{{LOAD}}
analytics.page();
}}();"""  # noqa: E501

# The two documented ways to add the plugin (docs/sdk.md, "With analytics.js").
LOAD_WITH_PLUGINS = 'analytics.load("{{WRITE_KEY}}", {plugins: [mailslotPlugin({{OPTIONS}})]});'
LOAD_THEN_REGISTER = 'analytics.load("{{WRITE_KEY}}");\nanalytics.register(mailslotPlugin({{OPTIONS}}));'

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Customer app on analytics.js</title>
<script src="{{GATEWAY}}/sdk/v1/analytics-plugin.js"></script>
<script>
{{SNIPPET}}
</script></head>
<body style="font-family: system-ui; margin: 40px"><h1>Customer app</h1></body></html>
"""


@dataclass
class SegmentSite:
    """A customer's site on its own origin, the CDN's paths and Segment's collector, all local."""

    url: str
    collected: list[dict[str, Any]] = field(default_factory=list)

    def page_url(self, form: str = "load", proof: str = "") -> str:
        return str(URL(f"{self.url}/app").with_query({"form": form, "proof": proof}))


@pytest.fixture
async def segment_site(live_gateway: Any) -> AsyncIterator[SegmentSite]:
    if not (BUNDLES / "standalone.js").is_file():
        pytest.fail(f"{BUNDLES} is missing: `make lint-js` (or `npm ci`) installs @segment/analytics-next")
    site = SegmentSite(url="")

    async def app_page(request: web.Request) -> web.Response:
        options: dict[str, Any] = {"siteId": live_gateway.site_id, "traits": ["first_name"]}
        extra = ""
        if request.query.get("proof") == "hash":  # the backend computes the proof: here, /proof
            extra = ', userHash: (id) => fetch("/proof?user=" + encodeURIComponent(id)).then((r) => r.text())'
        load = LOAD_WITH_PLUGINS if request.query.get("form") == "load" else LOAD_THEN_REGISTER
        options_js = json.dumps(options)[:-1] + extra + "}"
        snippet = SEGMENT_SNIPPET.replace("{{LOAD}}", load).replace("{{OPTIONS}}", options_js)
        page = PAGE.replace("{{SNIPPET}}", snippet).replace("{{GATEWAY}}", live_gateway.url)
        page = page.replace("{{CDN}}", site.url).replace("{{WRITE_KEY}}", WRITE_KEY)
        return web.Response(text=page, content_type="text/html")

    async def proof(request: web.Request) -> web.Response:
        return web.Response(text=user_hash(live_gateway.identity_secret, request.query["user"]))

    async def bundle(request: web.Request) -> web.FileResponse:
        return web.FileResponse(BUNDLES / "standalone.js")

    async def chunk(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = BUNDLES / name
        if "/" in name or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def settings(request: web.Request) -> web.Response:
        # The source's settings as Segment's CDN serves them, with the collector on this site.
        host = URL(site.url).authority
        return web.json_response({
            "integrations": {"Segment.io": {"apiKey": WRITE_KEY, "apiHost": f"{host}/v1", "protocol": "http"}},
            "plan": {"track": {"__default": {"enabled": True}}},
            "metrics": {"sampleRate": 0},
        }, headers={"Access-Control-Allow-Origin": "*"})

    async def collect(request: web.Request) -> web.Response:
        site.collected.append(json.loads(await request.read()))
        return web.json_response({}, headers={"Access-Control-Allow-Origin": "*"})

    app = web.Application()
    app.router.add_get("/app", app_page)
    app.router.add_get("/proof", proof)
    app.router.add_get("/analytics.js/v1/{key}/analytics.min.js", bundle)
    app.router.add_get("/analytics-next/bundles/{name}", chunk)
    app.router.add_get("/v1/projects/{key}/settings", settings)
    app.router.add_post("/v1/{kind}", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    site.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield site
    finally:
        await runner.cleanup()


@dataclass
class Watched:
    page: Page
    errors: list[str]
    outside: list[str]
    polls: list[dict[str, Any]]
    identifies: list[dict[str, Any]]


async def open_page(context: BrowserContext, url: str) -> Watched:
    """The page, with its JS errors, the requests it tried outside 127.0.0.1 (refused), and its
    polls and identifies to the gateway."""
    page = await context.new_page()
    watched = Watched(page, [], [], [], [])

    async def local_only(route: Route) -> None:
        if URL(route.request.url).host != "127.0.0.1":
            watched.outside.append(route.request.url)
            await route.abort()
        else:
            await route.continue_()

    def sent(request: Request) -> None:
        if request.url.endswith("/v1/poll"):
            watched.polls.append(request.post_data_json)
        elif request.url.endswith("/v1/identify"):
            watched.identifies.append(request.post_data_json)

    await page.route("**/*", local_only)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    page.on("request", sent)
    await page.goto(url)
    await page.wait_for_function("window.analytics && window.analytics.initialized === true", timeout=10_000)
    return watched


async def identified(watched: Watched, call: str, user: str) -> None:
    """Runs `call` in the page and waits for a poll as `user`."""
    async with watched.page.expect_request(
        lambda r: r.url.endswith("/v1/poll") and (r.post_data_json or {}).get("user") == user, timeout=APPEAR_MS
    ):
        await watched.page.evaluate(call)


def new_user() -> str:
    return f"segment-{uuid.uuid4().hex[:12]}"


async def backend_call(live_gateway: Any, method: str, path: str, body: Any, expect_status: int) -> Any:
    async with aiohttp.ClientSession() as session, session.request(
        method, live_gateway.url + path, json=body, headers={"Authorization": f"Bearer {live_gateway.api_key}"}
    ) as resp:
        assert resp.status == expect_status, await resp.text()
        return await resp.json()


async def test_identify_track_page_and_reset_drive_mailslot(
    browser: Browser, segment_site: SegmentSite, server_api: ServerApi, live_gateway: Any, artifacts: Path
) -> None:
    trigger = {"event": "Plan Upgraded",
               "message": {"content": {"layout": "modal", "title": "Welcome to {{ event.data.plan }}"}}}
    await backend_call(live_gateway, "POST", "/v1/triggers", trigger, 201)
    await backend_call(live_gateway, "PATCH", "/v1/workspace", {"intervals": {"active_s": 3600}}, 200)
    ada, grace = new_user(), new_user()
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    w = await open_page(context, segment_site.page_url("load"))
    page = w.page

    # identify -> mailslot polls as that person: their message shows.
    await identified(w, f"analytics.identify({json.dumps(ada)}, {{first_name: 'Ada', email: 'ada@example.com'}})", ada)
    welcome = await server_api.send(ada, {"layout": "banner_top", "title": "Hello Ada"}, persistent=True)
    await expect(page.locator(f'[data-mailslot-id="{welcome["id"]}"]')).to_be_visible(timeout=APPEAR_MS)

    # track -> the trigger fires and its message shows, rendered with the event's properties.
    async with page.expect_response(lambda r: r.url.endswith("/v1/track"), timeout=APPEAR_MS) as tracked:
        await page.evaluate("analytics.track('Plan Upgraded', {plan: 'Pro'})")
    assert (await tracked.value).request.post_data_json["user"] == ada
    modal = page.locator(".mailslot-modal .mailslot-title")
    await expect(modal).to_have_text("Welcome to Pro", timeout=APPEAR_MS)
    await page.locator(".mailslot-modal .mailslot-close").click()

    # page -> a message for /billing/* shows once the app routes there. The route change bypasses
    # the SDK's own History API watch (History.prototype, as a router holding the original would):
    # only analytics.page() tells mailslot the path changed.
    # The SDK asks again for an offer it could not show: once at once, then after the tier's
    # interval, an hour here, so only the plugin can make it look at the path again.
    answers: list[str] = []
    twice = asyncio.Event()

    async def answered(response: Response) -> None:
        if twice.is_set() or not response.url.endswith("/v1/poll"):
            return
        try:
            body = await response.text()
        except PlaywrightError:
            # A held poll the SDK aborted (a route change, reset) has no body to read: it
            # delivered nothing to the page, so it is not one of the answers counted here.
            return
        if "Billing tip" in body:
            answers.append(response.url)
            if len(answers) >= 2:
                twice.set()

    page.on("response", answered)
    billing = await server_api.send(ada, {"layout": "banner_bottom", "title": "Billing tip",
                                          "page": {"glob": "/billing/*"}})
    await asyncio.wait_for(twice.wait(), APPEAR_MS / 1000)  # leased to the page, off its path
    page.remove_listener("response", answered)
    await expect(page.locator(f'[data-mailslot-id="{billing["id"]}"]')).to_have_count(0)
    await page.evaluate("History.prototype.pushState.call(history, null, '', '/billing/plans'); analytics.page()")
    await expect(page.locator(f'[data-mailslot-id="{billing["id"]}"]')).to_be_visible(timeout=APPEAR_MS)
    await page.screenshot(path=str(artifacts / "analytics-plugin.png"), animations="disabled")

    # One identify for the person: later events never identify again; the traits sent are the
    # ones the plugin was told to pass, never email (the backend's).
    assert [i["attributes"] for i in w.identifies] == [{"first_name": "Ada"}]

    # reset -> the person's messages leave the screen and no poll goes out as them again.
    await page.evaluate("analytics.reset()")
    await expect(page.locator(f'[data-mailslot-id="{welcome["id"]}"]')).to_have_count(0, timeout=APPEAR_MS)
    later = await server_api.send(ada, {"layout": "modal", "title": "After logout"})
    await identified(w, f"analytics.identify({json.dumps(grace)})", grace)
    for_grace = await server_api.send(grace, {"layout": "modal", "title": "Hello Grace"})
    await expect(page.locator(f'[data-mailslot-id="{for_grace["id"]}"]')).to_be_visible(timeout=APPEAR_MS)
    assert (await server_api.message(later["id"]))["state"] == "queued"

    # Segment still got every call (its collector is local), and nothing left this machine.
    kinds = [e.get("type") for e in segment_site.collected]
    assert {"identify", "track", "page"} <= set(kinds)
    assert w.outside == []
    assert w.errors == []
    await context.close()


async def test_register_form_polls_as_the_person_analytics_js_remembers(
    browser: Browser, segment_site: SegmentSite, server_api: ServerApi
) -> None:
    """`analytics.register(...)` after load; the next page load never calls identify."""
    ada = new_user()
    context = await browser.new_context()
    first = await open_page(context, segment_site.page_url("register"))
    await identified(first, f"analytics.identify({json.dumps(ada)})", ada)
    await first.page.close()

    async with context.expect_event(
        "request", lambda r: r.url.endswith("/v1/poll") and (r.post_data_json or {}).get("user") == ada,
        timeout=10_000,
    ):
        again = await open_page(context, segment_site.page_url("register"))
    sent = await server_api.send(ada, {"layout": "modal", "title": "Welcome back"})
    await expect(again.page.locator(f'[data-mailslot-id="{sent["id"]}"]')).to_be_visible(timeout=APPEAR_MS)
    assert again.identifies == []
    assert again.outside == [] and again.errors == []
    await context.close()


async def test_required_identity_proof_comes_from_the_plugins_user_hash(
    browser: Browser, segment_site: SegmentSite, server_api: ServerApi, live_gateway: Any
) -> None:
    """The proof is asked of the page's backend per person, never taken from the analytics.js call."""
    await backend_call(live_gateway, "PATCH", "/v1/workspace", {"identity_mode": "required"}, 200)
    ada = new_user()
    context = await browser.new_context()
    w = await open_page(context, segment_site.page_url("load", proof="hash"))
    await identified(w, f"analytics.identify({json.dumps(ada)})", ada)
    sent = await server_api.send(ada, {"layout": "modal", "title": "Proven"})
    await expect(w.page.locator(f'[data-mailslot-id="{sent["id"]}"]')).to_be_visible(timeout=APPEAR_MS)
    proof = user_hash(live_gateway.identity_secret, ada)
    assert {p.get("user_hash") for p in w.polls if p.get("user") == ada} == {proof}
    assert w.outside == [] and w.errors == []
    await context.close()
