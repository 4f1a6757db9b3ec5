"""`mailslot.track()` in a real headless chromium: a tracked event fires the workspace's trigger and
the message, rendered with that event's data, appears in the page; under required identity proof
the SDK sends the proof, and an event without one is refused and queues nothing.

The page lives on another origin than the gateway, as a customer's would. Every wait has a
timeout; no test sleeps.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from gateway.core.identity import user_hash

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import CustomerSite, ServerApi

pytestmark = pytest.mark.browser

APPEAR_MS = 5_000  # "within a few seconds"

TRIGGER = {
    "event": "upgraded",
    "message": {
        "content": {
            "layout": "modal",
            "title": "Welcome to {{ event.data.plan | upcase }}",
            "body": "Thanks, {{ customer.first_name | default: 'friend' }}. Your {{ event.data.plan }} plan is on.",
        },
        "campaign": "upgrade",
    },
}


class Backend:
    """The product's backend calling the server API (what `ServerApi` does not cover)."""

    def __init__(self, session: aiohttp.ClientSession, gateway: Any) -> None:
        self._session = session
        self._url = gateway.url
        self._headers = {"Authorization": f"Bearer {gateway.api_key}"}

    async def call(self, method: str, path: str, body: Any = None, expect_status: int = 200) -> Any:
        async with self._session.request(method, self._url + path, json=body, headers=self._headers) as resp:
            assert resp.status == expect_status, await resp.text()
            return await resp.json()

    async def messages(self, user: str) -> list[dict[str, Any]]:
        async with self._session.get(f"{self._url}/v1/people/{user}/messages", headers=self._headers) as resp:
            if resp.status == 404:
                return []
            assert resp.status == 200, await resp.text()
            return list((await resp.json())["messages"])


@pytest.fixture
async def backend(live_gateway: Any) -> AsyncIterator[Backend]:
    async with aiohttp.ClientSession() as session:
        yield Backend(session, live_gateway)


def new_user() -> str:
    return f"browser-{uuid.uuid4().hex[:12]}"


async def open_app(context: BrowserContext, site: CustomerSite, user: str, **attributes: Any) -> tuple[Page, list[str]]:
    """The customer page as `user`, once its first poll is on the wire, with its uncaught JS errors."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    async with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/poll"), timeout=10_000) as poll:
        await page.goto(site.app_url(user, attributes or None))
    await poll.value
    return page, errors


async def test_a_tracked_event_shows_the_triggered_message_rendered_with_its_data(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi, backend: Backend
) -> None:
    await backend.call("POST", "/v1/triggers", TRIGGER, expect_status=201)
    # The page's identify writes first_name as the device's; templates read it once the workspace allows.
    await backend.call("PATCH", "/v1/workspace", {"device_attributes": ["first_name"]})
    user = new_user()
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, user, first_name="Ada")
    await eventually(lambda: _first_name(server_api, user), "Ada")

    async with page.expect_response(lambda r: r.url.endswith("/v1/track"), timeout=APPEAR_MS) as tracked:
        await page.evaluate("mailslot.track('upgraded', {plan: 'pro'})")
    response = await tracked.value
    assert response.status == 200
    [message_id] = (await response.json())["queued"]

    modal = page.locator(f'[data-mailslot-id="{message_id}"]')
    await expect(modal.locator(".mailslot-title")).to_have_text("Welcome to PRO", timeout=APPEAR_MS)
    await expect(modal.locator(".mailslot-body")).to_have_text("Thanks, Ada. Your pro plan is on.")
    await eventually(lambda: _state(server_api, message_id), "shown")
    [message] = await backend.messages(user)
    assert (message["id"], message["campaign"]) == (message_id, "upgrade")
    assert js_errors == []
    await context.close()


async def test_under_required_identity_proof_track_needs_the_users_hash(
    browser: Browser, customer_site: CustomerSite, backend: Backend, live_gateway: Any
) -> None:
    await backend.call("POST", "/v1/triggers", TRIGGER, expect_status=201)
    await backend.call("PATCH", "/v1/workspace", {"identity_mode": "required"})
    user = new_user()
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, user)
    # A function, not an expression: Playwright would call the remover that on() returns.
    await page.evaluate("""() => {
        window.__trackErrors = [];
        mailslot.on('error', (e) => { if (e.event) window.__trackErrors.push([e.event, e.code]); });
    }""")

    # Identified without the proof: the gateway refuses the event and the SDK says why.
    async with page.expect_response(lambda r: r.url.endswith("/v1/track"), timeout=APPEAR_MS) as refused:
        await page.evaluate("mailslot.track('upgraded', {plan: 'pro'})")
    assert (await refused.value).status == 403
    await page.wait_for_function("window.__trackErrors.length > 0", timeout=APPEAR_MS)
    assert await page.evaluate("window.__trackErrors") == [["upgraded", "identity_proof_required"]]
    assert await backend.messages(user) == []

    # With the proof the backend computed, the same call fires the trigger.
    proof = user_hash(live_gateway.identity_secret, user)
    async with page.expect_response(lambda r: r.url.endswith("/v1/track"), timeout=APPEAR_MS) as accepted:
        await page.evaluate(
            "([u, h]) => { mailslot.identify(u, null, {userHash: h}); mailslot.track('upgraded', {plan: 'team'}); }",
            [user, proof],
        )
    response = await accepted.value
    assert response.status == 200
    assert response.request.post_data_json["user_hash"] == proof
    [message_id] = (await response.json())["queued"]
    modal = page.locator(f'[data-mailslot-id="{message_id}"]')
    await expect(modal.locator(".mailslot-title")).to_have_text("Welcome to TEAM", timeout=APPEAR_MS)
    assert [m["id"] for m in await backend.messages(user)] == [message_id]
    assert js_errors == []
    await context.close()


async def test_an_event_tracked_before_the_sdk_loads_is_sent_once_it_has(
    browser: Browser, customer_site: CustomerSite, backend: Backend
) -> None:
    """The snippet's stub queues track() with everything else; the SDK replays it after load and identify."""
    await backend.call("POST", "/v1/triggers", TRIGGER, expect_status=201)
    user = new_user()
    context = await browser.new_context()
    page = await context.new_page()
    release = asyncio.Event()

    async def hold_sdk(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/sdk/v1/mailslot.js", hold_sdk)
    await page.goto(customer_site.app_url(user), wait_until="domcontentloaded")
    assert await page.evaluate("mailslot.track('upgraded', {plan: 'early'}); !!mailslot.__loaded") is False

    async with page.expect_response(lambda r: r.url.endswith("/v1/track"), timeout=10_000) as tracked:
        release.set()
    response = await tracked.value
    assert response.status == 200
    assert response.request.post_data_json["user"] == user
    [message_id] = (await response.json())["queued"]
    modal = page.locator(f'[data-mailslot-id="{message_id}"]')
    await expect(modal.locator(".mailslot-title")).to_have_text("Welcome to EARLY", timeout=APPEAR_MS)
    await context.close()


async def test_an_event_tracked_before_anyone_is_identified_goes_out_as_the_next_person(
    browser: Browser, customer_site: CustomerSite, backend: Backend
) -> None:
    await backend.call("POST", "/v1/triggers", TRIGGER, expect_status=201)
    first, second = new_user(), new_user()
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, first)
    sent: list[dict[str, Any]] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/track") else None)

    # Logged out: nobody to send the event as, so it waits for the next identify().
    await page.evaluate("() => { mailslot.reset(); mailslot.track('upgraded', {plan: 'later'}); }")
    async with page.expect_response(lambda r: r.url.endswith("/v1/track"), timeout=APPEAR_MS) as tracked:
        await page.evaluate("(u) => { mailslot.identify(u); }", second)
    response = await tracked.value
    assert response.status == 200
    [message_id] = (await response.json())["queued"]
    await expect(page.locator(f'[data-mailslot-id="{message_id}"] .mailslot-title')).to_have_text(
        "Welcome to LATER", timeout=APPEAR_MS
    )
    assert [(body["user"], body["name"], body["data"]) for body in sent] == [(second, "upgraded", {"plan": "later"})]
    assert await backend.messages(first) == []
    assert js_errors == []
    await context.close()


async def eventually(probe: Callable[[], Awaitable[Any]], expected: Any, within: float = 10.0) -> None:
    """Asks the server API until `probe` answers `expected` (the gateway has no push to the backend)."""
    deadline = time.monotonic() + within
    while (found := await probe()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"still {found!r}, not {expected!r}, after {within} s")
        await asyncio.sleep(0.1)


async def _first_name(api: ServerApi, user: str) -> str | None:
    person = await api.person(user)
    return (person or {}).get("device_attributes", {}).get("first_name")


async def _state(api: ServerApi, message_id: str) -> str:
    return str((await api.message(message_id))["state"])
