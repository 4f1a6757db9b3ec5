"""Anonymous visitors in a real browser (decision 0023): a page nobody signed in to gets the visit
broadcast; once the visitor identifies, the message is the person's and never shows again, on
this device or another. Every wait has a timeout; no test sleeps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from test_sdk_browser import APPEAR_MS, _is_poll, card, eventually, has_event, new_user, page_events

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import CustomerSite, ServerApi

pytestmark = pytest.mark.browser

VISIT = {"layout": "banner_top", "title": "Welcome, visitor", "body": "Take the tour"}


async def open_and_answer(context: BrowserContext, url: str) -> Page:
    """A page at `url` once it has had the answer to a poll, and so drawn what that answer held:
    the SDK sends its next poll only after handling the answer to the one before."""
    page = await context.new_page()
    polls: list[Any] = []
    page.on("request", lambda request: polls.append(request) if _is_poll(request) else None)
    await page.goto(url)

    async def answered() -> bool:
        return len(polls) >= 2

    await eventually(answered)
    return page


async def visit_cards(page: Page) -> int:
    return int(await page.locator(".mailslot-card").count())


async def test_an_anonymous_page_gets_the_visit_message_and_identify_keeps_it_from_showing_again(
    browser: Browser, customer_site: CustomerSite, server_api: ServerApi
) -> None:
    broadcast = await server_api.broadcast({"audience": {"visitors": True}, "content": VISIT, "frequency": "once"})
    user = new_user()
    laptop = await browser.new_context()
    page = await laptop.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(customer_site.app_url(None))

    banner = page.locator(".mailslot-card", has_text="Welcome, visitor")
    await expect(banner).to_be_visible(timeout=APPEAR_MS)
    message_id = await banner.get_attribute("data-mailslot-id")
    assert message_id is not None
    await has_event(server_api, message_id, "shown")
    anonymous_id = await page.evaluate("localStorage.getItem('mailslot.anonymous_id')")
    assert anonymous_id and anonymous_id.startswith("anon_")

    # The visitor signs in: the message (shown, with its history) becomes the person's.
    await page.evaluate(f"mailslot.identify({user!r})")

    async def merged() -> list[dict[str, Any]]:
        return [m for m in await server_api.messages(user) if m["id"] == message_id]

    [mine] = await eventually(merged)
    assert mine["state"] == "shown"
    assert await page.evaluate("localStorage.getItem('mailslot.anonymous_id')") is None
    await expect(card(page, message_id)).to_be_visible()  # what the visitor saw stays on screen
    assert [e for e in await page_events(page) if e[0] == "error"] == []

    # The same person on this laptop later, and on a phone: the visit broadcast does not show again.
    await page.close()  # (an open tab would poll for the new one: one poller per browser)
    again = await open_and_answer(laptop, customer_site.app_url(user))
    phone = await browser.new_context()
    elsewhere = await open_and_answer(phone, customer_site.app_url(user))
    assert [await visit_cards(again), await visit_cards(elsewhere)] == [0, 0]

    # While another visitor still gets it: the broadcast is live, so the zeros above mean something.
    stranger = await browser.new_context()
    other = await stranger.new_page()
    await other.goto(customer_site.app_url(None))
    await expect(other.locator(".mailslot-card", has_text="Welcome, visitor")).to_be_visible(timeout=APPEAR_MS)

    assert [e for e in await page_events(again) if e[0] == "error"] == []
    assert errors == []
    summary = (await server_api_broadcast(server_api, broadcast["id"]))["counts"]
    assert summary["shown"] == 2, summary
    for context in (laptop, phone, stranger):
        await context.close()


async def server_api_broadcast(server_api: ServerApi, broadcast_id: str) -> dict[str, Any]:
    async def shown_twice() -> dict[str, Any] | None:
        view = await server_api.broadcast_view(broadcast_id)
        return view if view["counts"]["shown"] >= 2 else None

    return await eventually(shown_twice)
