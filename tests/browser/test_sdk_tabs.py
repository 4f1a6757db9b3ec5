"""The web SDK where people already are: messages at once, one poll per browser, page rules.

The pages live on another origin than the gateway (the `customer_site` fixture). Every wait has a
timeout; no test sleeps.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from test_sdk_browser import APPEAR_MS, _is_poll, card, eventually, has_event, new_user, open_app, page_events

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import CustomerSite, ServerApi

pytestmark = pytest.mark.browser

# The bar: a held poll answers the moment a message is sent, so a visible page shows each
# message within a second, the first and every one after it (it used to wait next_poll_s, 10 s).
AT_ONCE_MS = 1_000

# Headless pages all count as visible; this makes one hidden, as a background tab is.
HIDE = """() => {
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


async def open_tab(context: BrowserContext, site: CustomerSite, user: str, polls: Counter[Page]) -> Page:
    """Opens the customer page once its SDK has loaded (a tab that does not poll sends nothing to
    wait for); `polls` counts each tab's requests to /v1/poll."""
    page = await context.new_page()

    def count(request: Any) -> None:
        if _is_poll(request):
            polls[page] += 1

    page.on("request", count)
    await page.goto(site.app_url(user))
    await page.wait_for_function("window.mailslot && window.mailslot.__loaded", timeout=APPEAR_MS)
    return page


async def test_messages_sent_one_after_another_each_appear_at_once(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    user = new_user()
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, user)
    for n in range(3):
        started = time.monotonic()
        sent = await server_api.send(user, {"layout": "banner_top", "title": f"Message {n + 1}"})
        await expect(card(page, sent["id"])).to_be_visible(timeout=AT_ONCE_MS)
        assert time.monotonic() - started < AT_ONCE_MS / 1000, f"message {n + 1} took longer than a second"
    assert js_errors == []
    await context.close()


async def test_tabs_of_one_browser_share_one_poll_and_the_visible_tab_shows_the_message(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    user = new_user()
    context = await browser.new_context()
    polls: Counter[Page] = Counter()
    tabs = [await open_tab(context, customer_site, user, polls) for _ in range(3)]

    async def polling() -> int:
        return sum(polls.values())

    await eventually(polling)
    for tab in tabs[:2]:  # the first (the poller) and the second go to the background
        await tab.evaluate(HIDE)

    sent = await server_api.send(user, {"layout": "modal", "title": "In the visible tab", "body": "Once."})
    await expect(card(tabs[2], sent["id"])).to_be_visible(timeout=APPEAR_MS)
    events = await has_event(server_api, sent["id"], "shown")
    assert [e["type"] for e in events].count("shown") == 1
    assert [await card(tab, sent["id"]).count() for tab in tabs[:2]] == [0, 0]
    assert ["shown", sent["id"], None] in await page_events(tabs[2])
    assert [[e for e in await page_events(tab) if e[0] == "shown"] for tab in tabs[:2]] == [[], []]
    assert list(polls) == [tabs[0]], "only the first tab polls"

    # The poller closes: another tab takes over, and the visible tab still gets what is sent.
    await tabs[0].close()
    polls.clear()
    second = await server_api.send(user, {"layout": "banner_top", "title": "After the poller left"})
    await expect(card(tabs[2], second["id"])).to_be_visible(timeout=APPEAR_MS)
    assert await card(tabs[1], second["id"]).count() == 0
    assert len(polls) == 1, "one tab took over the polling"
    await context.close()


async def test_a_message_with_a_page_rule_waits_for_a_matching_path_then_shows_after_push_state(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    user = new_user()
    context = await browser.new_context()
    page, js_errors = await open_app(context, customer_site, user)
    content = {"layout": "banner_top", "title": "Your invoices", "page": {"glob": "/billing/**"}}
    answers: list[str] = []

    async def keep(response: Any) -> None:
        if response.url.endswith("/v1/poll"):
            answers.append(await response.text())

    page.on("response", keep)
    sent = await server_api.send(user, content)

    async def delivered() -> bool:
        return any(sent["id"] in text for text in answers)

    async with page.expect_request(_is_poll, timeout=APPEAR_MS):  # sent once the answer was handled
        await eventually(delivered)
    assert await card(page, sent["id"]).count() == 0, "not on /app"
    assert (await server_api.message(sent["id"]))["state"] == "offered", "leased to this device meanwhile"

    await page.evaluate("history.pushState({}, '', '/billing/2026/invoices')")
    await expect(card(page, sent["id"])).to_be_visible(timeout=APPEAR_MS)
    await has_event(server_api, sent["id"], "shown")
    assert js_errors == []
    await context.close()
