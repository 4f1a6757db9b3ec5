"""The web SDK where people already are: messages at once, one poll per browser, page rules.

The pages live on another origin than the gateway (the `customer_site` fixture). Every wait has a
timeout; no test sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from test_sdk_browser import APPEAR_MS, _is_poll, card, eventually, has_event, new_user, open_app, page_events

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import CustomerSite, ServerApi

pytestmark = pytest.mark.browser

# The shortest poll interval the SDK can be told (10 s when a message waits, less its 10 % jitter;
# after a message it is 54-66 s). A message that waited for such a poll did not come "at once".
SHORTEST_INTERVAL_MS = 9_000

# Notes in window.__longTimersFired every page timer of at least the shortest interval that fires. A
# poll the SDK sends after next_poll_s is one; nothing else on a healthy page is (the held poll's
# abort guard, 75 s, fires only if its answer never comes).
LONG_TIMERS = f"""(() => {{
  const setTimeoutOf = window.setTimeout.bind(window);
  window.__longTimersFired = [];
  window.setTimeout = (fn, ms, ...args) => typeof fn === "function" && ms >= {SHORTEST_INTERVAL_MS}
    ? setTimeoutOf((...a) => {{ window.__longTimersFired.push(ms); return fn(...a); }}, ms, ...args)
    : setTimeoutOf(fn, ms, ...args);
}})();"""

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
    """Each message reaches the open page in the answer to a held poll, never through a poll the
    SDK sent after its interval (it used to wait next_poll_s). Checked by what the page asked and
    which of its timers fired, not by a clock, so a slow machine cannot change the outcome."""
    user = new_user()
    context = await browser.new_context()
    await context.add_init_script(LONG_TIMERS)
    held = asyncio.Event()
    answers: list[tuple[int, str]] = []  # each poll's wait and its answer

    def on_request(request: Any) -> None:
        if _is_poll(request) and (request.post_data_json or {}).get("wait", 0) > 0:
            held.set()

    async def on_response(response: Any) -> None:
        if _is_poll(response.request):
            answers.append(((response.request.post_data_json or {}).get("wait", 0), await response.text()))

    context.on("request", on_request)
    context.on("response", on_response)
    page, js_errors = await open_app(context, customer_site, user)
    # The first poll is a quick one (wait 0). Send only once the held poll after it is on the wire,
    # so the first message cannot land in the quick one by winning a race with its claim. Whether
    # the held poll is parked yet when a send arrives does not matter: it is answered with the
    # message either way.
    await asyncio.wait_for(held.wait(), timeout=10)
    for n in range(3):
        sent = await server_api.send(user, {"layout": "banner_top", "title": f"Message {n + 1}"})
        # A deadline for waiting, not a measurement: generous beside the sub-second this takes, and
        # well below SHORTEST_INTERVAL_MS, so a message that needed an interval's poll fails here.
        await expect(card(page, sent["id"])).to_be_visible(timeout=APPEAR_MS)

        async def delivered(message_id: str = sent["id"]) -> list[int]:
            return [wait for wait, text in answers if message_id in text]

        assert all(wait > 0 for wait in await eventually(delivered)), f"message {n + 1} came in a held poll's answer"
        assert await page.evaluate("window.__longTimersFired") == [], f"no poll waited an interval for message {n + 1}"
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
