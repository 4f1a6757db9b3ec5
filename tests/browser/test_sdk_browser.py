"""The web SDK in a real headless chromium against a running gateway.

The pages live on another origin than the gateway (the `customer_site` fixture), as a customer's
site would, so CORS is exercised on every request. Every wait has a timeout; no test sleeps.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, expect

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import CustomerSite, ServerApi

pytestmark = pytest.mark.browser

T = TypeVar("T")
APPEAR_MS = 5_000  # "within a few seconds"


def new_user() -> str:
    return f"browser-{uuid.uuid4().hex[:12]}"


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float = 10.0) -> T:
    """Polls the server API until `probe` returns something truthy (the gateway has no push)."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.1)


async def has_event(api: ServerApi, message_id: str, type_: str, action: str | None = None) -> list[dict[str, Any]]:
    """Waits for the gateway to record the event; returns all the message's events."""

    async def probe() -> list[dict[str, Any]] | None:
        events: list[dict[str, Any]] = (await api.message(message_id))["events"]
        found = any(e["type"] == type_ and (action is None or e["action"] == action) for e in events)
        return events if found else None

    return await eventually(probe)


async def open_app(context: BrowserContext, site: CustomerSite, user: str, **attributes: Any) -> tuple[Page, list[str]]:
    """Opens the customer page as `user` once its first poll is on the wire; also returns the
    page's uncaught JavaScript errors, filled as they happen."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    async with page.expect_request(_is_poll, timeout=10_000) as first_poll:
        await page.goto(site.app_url(user, attributes or None))
    await first_poll.value
    return page, errors


def _is_poll(request: Any) -> bool:
    return bool(request.method == "POST" and request.url.endswith("/v1/poll"))


def card(page: Page, message_id: str) -> Any:
    return page.locator(f'[data-mailslot-id="{message_id}"]')


async def page_events(page: Page) -> list[list[Any]]:
    return list(await page.evaluate("window.__events"))


async def test_message_appears_and_action_is_recorded(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    user = new_user()
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, user)

    sent = await server_api.send(
        user,
        {
            "layout": "modal",
            "title": "Welcome aboard",
            "body": "Glad you're here.",
            "actions": [
                {"name": "tour", "label": "Take the tour", "url": f"{customer_site.url}/thanks"},
                {"name": "later", "label": "Maybe later"},
            ],
        },
    )
    modal = card(page, sent["id"])
    await expect(modal.locator(".mailslot-title")).to_have_text("Welcome aboard", timeout=APPEAR_MS)
    await expect(modal.locator(".mailslot-body")).to_have_text("Glad you're here.")
    await expect(modal).to_have_attribute("role", "dialog")
    # Focus moved into the modal, onto the first action.
    await expect(modal.get_by_role("button", name="Take the tour")).to_be_focused()
    await expect(modal.get_by_role("button", name="Dismiss")).to_be_visible()
    await has_event(server_api, sent["id"], "shown")

    # The action is recorded even though the page navigates away at once (keepalive).
    await modal.get_by_role("button", name="Take the tour").click()
    await page.wait_for_url(f"{customer_site.url}/thanks", timeout=APPEAR_MS)
    events = await has_event(server_api, sent["id"], "action", "tour")
    assert [e["type"] for e in events].count("shown") == 1
    assert js_errors == []
    await context.close()


async def test_dismissal_is_recorded(browser: Browser, customer_site: CustomerSite, server_api: ServerApi) -> None:
    user = new_user()
    # Both wait in the queue, so the page's first poll brings both.
    modal_msg = await server_api.send(user, {"layout": "modal", "title": "Escape me", "body": "Press Escape."})
    banner_msg = await server_api.send(
        user, {"layout": "banner_bottom", "title": "Close me", "body": "Use the button."}
    )
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, user)

    modal = card(page, modal_msg["id"])
    banner = card(page, banner_msg["id"])
    await expect(modal).to_be_visible(timeout=APPEAR_MS)
    await expect(banner).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(modal).to_have_count(0)
    await has_event(server_api, modal_msg["id"], "dismissed")

    await banner.get_by_role("button", name="Dismiss").click()
    await expect(banner).to_have_count(0)
    await has_event(server_api, banner_msg["id"], "dismissed")

    seen = await page_events(page)
    assert ["dismissed", modal_msg["id"], None] in seen
    assert ["dismissed", banner_msg["id"], None] in seen
    assert js_errors == []
    await context.close()


async def test_inline_message_renders_into_its_element(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    user = new_user()
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, user)

    sent = await server_api.send(
        user,
        {
            "layout": "inline",
            "element_id": "mailslot-inline",
            "title": "Inline news",
            "body": "Right here.",
        },
    )
    inline = page.locator("#mailslot-inline").locator(f'[data-mailslot-id="{sent["id"]}"]')
    await expect(inline.locator(".mailslot-title")).to_have_text("Inline news", timeout=APPEAR_MS)
    await has_event(server_api, sent["id"], "shown")
    assert js_errors == []
    await context.close()


async def test_two_devices_of_one_person_show_the_message_once(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    user = new_user()
    contexts = [await browser.new_context(), await browser.new_context()]
    pages = [(await open_app(c, customer_site, user))[0] for c in contexts]
    device_ids = [await p.evaluate("mailslot.deviceId") for p in pages]
    assert device_ids[0] != device_ids[1]

    sent = await server_api.send(user, {"layout": "modal", "title": "Only once", "body": "One device."})
    waits = [asyncio.ensure_future(card(p, sent["id"]).wait_for(timeout=APPEAR_MS)) for p in pages]
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    winner = waits.index(next(iter(done)))
    await next(iter(done))  # raises if it timed out

    events = await has_event(server_api, sent["id"], "shown")
    message = await server_api.message(sent["id"])
    assert message["device_id"] == device_ids[winner]
    assert [e["type"] for e in events].count("shown") == 1
    assert {e["device_id"] for e in events if e["type"] in ("offered", "shown")} == {device_ids[winner]}
    assert await card(pages[winner], sent["id"]).count() == 1
    assert await card(pages[1 - winner], sent["id"]).count() == 0
    assert [e for e in await page_events(pages[1 - winner]) if e[0] == "shown"] == []
    for c in contexts:
        await c.close()


async def test_persistent_banner_survives_reload_until_dismissed(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    user = new_user()
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, user)

    sent = await server_api.send(
        user, {"layout": "banner_top", "title": "Scheduled maintenance", "body": "Sunday 02:00 UTC."}, persistent=True
    )
    banner = card(page, sent["id"])
    await expect(banner).to_be_visible(timeout=APPEAR_MS)
    await has_event(server_api, sent["id"], "shown")

    await page.reload()
    await expect(banner).to_be_visible(timeout=APPEAR_MS)
    await expect(banner).to_have_count(1)

    await banner.get_by_role("button", name="Dismiss").click()
    await expect(banner).to_have_count(0)
    await has_event(server_api, sent["id"], "dismissed")

    # After a reload, a fresh marker message shows that a poll has come back; a banner still
    # active would have come back in it (or earlier).
    async with page.expect_request(_is_poll, timeout=10_000) as first_poll:
        await page.reload()
    await first_poll.value
    marker = await server_api.send(user, {"layout": "modal", "title": "Marker", "body": "Poll came back."})
    await expect(card(page, marker["id"])).to_be_visible(timeout=APPEAR_MS)
    await expect(banner).to_have_count(0)
    assert [e for e in await page_events(page) if e[1] == sent["id"]] == []
    assert js_errors == []
    await context.close()


async def test_html_in_content_is_shown_as_text_and_runs_nothing(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    user = new_user()
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, user)
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    title = "<img src=x onerror=alert(1)>"
    body = "<script>alert(2)</script><b>bold</b>"
    sent = await server_api.send(
        user,
        {
            "layout": "modal",
            "title": title,
            "body": body,
            "actions": [{"name": "js", "label": "<i>click</i>"}],
        },
    )
    modal = card(page, sent["id"])
    await expect(modal.locator(".mailslot-title")).to_have_text(title, timeout=APPEAR_MS)
    await expect(modal.locator(".mailslot-body")).to_have_text(body)
    assert await page.locator('img[src="x"]').count() == 0
    assert await modal.locator("script, b, i").count() == 0

    await modal.get_by_role("button", name="<i>click</i>").click()
    await has_event(server_api, sent["id"], "action", "js")
    assert dialogs == []
    assert js_errors == []
    await context.close()


async def test_identify_with_attributes_records_them(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    user = new_user()
    context = await browser.new_context()
    await open_app(context, customer_site, user, first_name="Ada", plan_name="pro")

    async def attributes() -> dict[str, Any] | None:
        person = await server_api.person(user)
        # The SDK's identify writes the device's own side (decision 0012), never the backend's.
        attrs = person and person.get("device_attributes")
        return attrs if attrs and attrs.get("first_name") == "Ada" else None

    assert (await eventually(attributes))["plan_name"] == "pro"
    await context.close()


async def test_server_api_is_not_reachable_cross_origin(
    browser: Browser, customer_site: CustomerSite, live_gateway: Any
) -> None:
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, new_user())
    outcome = await page.evaluate(
        """async ([url, key]) => {
            try {
                const r = await fetch(url + "/v1/messages", {method: "POST",
                    headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"},
                    body: JSON.stringify({to: {id: "x"}, content: {title: "t"}})});
                return "answered " + r.status;
            } catch (e) { return "blocked"; }
        }""",
        [live_gateway.url, live_gateway.api_key],
    )
    assert outcome == "blocked"
    assert js_errors == []
    await context.close()


async def test_demo_page_screenshot(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi, live_gateway: Any, artifacts: Any
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = await page.goto(f"{live_gateway.url}/demo")
    assert response is not None and response.status == 200
    html = await response.text()
    assert "{{" not in html, "the gateway must substitute {{SITE_ID}} and {{ENDPOINT}}"
    assert live_gateway.site_id in html, "/demo must embed the live_gateway workspace's site id"

    user = new_user()
    await page.wait_for_function("window.mailslot && window.mailslot.__loaded", timeout=APPEAR_MS)
    await page.fill("#demo-user", user)
    async with page.expect_request(lambda r: _is_poll(r) and user in (r.post_data or ""), timeout=10_000) as poll:
        await page.click("#demo-identify button[type=submit]")
    await poll.value
    await expect(page.locator("#curl")).to_contain_text(user)

    sent = await server_api.send(
        user,
        {
            "layout": "modal",
            "title": "Returns, without the back-and-forth",
            "body": "Customers can now print their own return labels. Turn on the returns portal "
            "in Settings and we'll handle the rest.",
            "image_url": f"{customer_site.url}/hero.svg",
            "actions": [{"name": "enable", "label": "Turn it on"}, {"name": "later", "label": "Not now"}],
        },
    )
    modal = card(page, sent["id"])
    await expect(modal).to_be_visible(timeout=APPEAR_MS)
    await expect(modal.locator("img.mailslot-image")).to_have_js_property("complete", True)
    await expect(page.locator("#log")).to_contain_text("shown")
    await page.screenshot(path=str(artifacts / "demo.png"), animations="disabled")
    assert errors == []
    await context.close()
