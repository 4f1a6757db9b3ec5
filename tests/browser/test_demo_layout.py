"""The demo page as a newcomer sees it, checked in a real chromium at a laptop's 1280x800.

Banners make room instead of covering the navigation or the last table row; the layout select
stands apart from its heading; the curl box wraps between tokens, never inside one; the event
log is on screen without scrolling; the greeting follows the browser's local time. Screenshots go
to the test's tmp folder (not committed) for a person to look at. No test sleeps.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import ServerApi

pytestmark = pytest.mark.browser

APPEAR_MS = 5_000
VIEWPORT = {"width": 1280, "height": 800}


async def open_demo(context: BrowserContext, url: str, user: str) -> tuple[Page, list[str]]:
    """/demo signed in as `user` (the page keeps it in localStorage), once it polls."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.add_init_script(f"localStorage.setItem('mailslot.demo_user', {user!r})")
    async with page.expect_request(lambda r: r.url.endswith("/v1/poll") and user in (r.post_data or ""),
                                   timeout=10_000):
        await page.goto(f"{url}/demo")
    return page, errors


async def box(page: Page, selector: str) -> dict[str, float]:
    found = await page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


async def test_banners_make_room_and_the_tools_fit_on_a_laptop_screen(
    browser: Browser, server_api: ServerApi, live_gateway: Any, tmp_path: Path
) -> None:
    user = f"demo-{uuid.uuid4().hex[:10]}"
    context = await browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page, errors = await open_demo(context, live_gateway.url, user)
    await page.screenshot(path=str(tmp_path / "demo-plain.png"), animations="disabled")

    # The event log is on screen, whole, without scrolling.
    log = await box(page, "#event-log")
    assert log["y"] >= 0 and log["y"] + log["height"] <= VIEWPORT["height"], log

    # The layout select stands apart from the heading beside it.
    heading, select = await box(page, "#send-heading"), await box(page, "#layout")
    gap = select["x"] - (heading["x"] + heading["width"])
    assert gap >= 12 or select["y"] >= heading["y"] + heading["height"], (heading, select)

    # The curl box wraps between tokens: every word of the command sits on one line.
    split = await page.evaluate("""() => {
        const text = document.getElementById('curl').firstChild;
        const broken = [];
        for (const m of text.data.matchAll(/\\S+/g)) {
            const r = document.createRange();
            r.setStart(text, m.index);
            r.setEnd(text, m.index + m[0].length);
            const lines = new Set(Array.from(r.getClientRects()).map((c) => Math.round(c.top)));
            if (lines.size > 1) broken.push(m[0]);
        }
        return broken;
    }""")
    assert split == []
    curl = await box(page, "#curl")
    aside = await box(page, "aside")
    assert curl["x"] + curl["width"] <= aside["x"] + aside["width"] + 1, "the box stays in its column"

    # A top banner sits below the navigation and pushes the page down; a bottom banner leaves
    # the last row of the table readable when scrolled to the end.
    top = await server_api.send(user, {"layout": "banner_top", "title": "Scheduled maintenance",
                                       "body": "Tracking updates pause Sunday 02:00-03:00 UTC."})
    bottom = await server_api.send(user, {"layout": "banner_bottom", "title": "New: returns portal",
                                          "body": "Let customers print return labels themselves.",
                                          "actions": [{"name": "open", "label": "Try it"}]})
    top_card = page.locator(f'[data-mailslot-id="{top["id"]}"]')
    bottom_card = page.locator(f'[data-mailslot-id="{bottom["id"]}"]')
    await expect(top_card).to_be_visible(timeout=APPEAR_MS)
    await expect(bottom_card).to_be_visible(timeout=APPEAR_MS)
    await page.wait_for_function(
        "parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--banner-top')) > 0"
        " && parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--banner-bottom')) > 0",
        timeout=APPEAR_MS,
    )
    await page.screenshot(path=str(tmp_path / "demo-banners-top.png"), animations="disabled")
    header, banner, greeting = await box(page, "header"), await box(page, f'[data-mailslot-id="{top["id"]}"]'), \
        await box(page, "h1")
    assert banner["y"] >= header["y"] + header["height"] - 1, (header, banner)
    assert greeting["y"] >= banner["y"] + banner["height"], (banner, greeting)

    # Brought into view (a link to it, the keyboard, find in page), the row stops above the banner;
    # so does the end of the page.
    await page.evaluate("document.querySelector('table tbody tr:last-child').scrollIntoView({block: 'end'})")
    await page.screenshot(path=str(tmp_path / "demo-banners-bottom.png"), animations="disabled")
    last_row = await box(page, "table tbody tr:last-child")
    banner = await box(page, f'[data-mailslot-id="{bottom["id"]}"]')
    assert last_row["y"] + last_row["height"] <= banner["y"], (last_row, banner)
    await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    for selector in ("table tbody tr:last-child", "aside > .card:last-child"):
        end = await box(page, selector)
        assert end["y"] + end["height"] <= banner["y"], (selector, end, banner)

    # Dismissed, the banners give their room back.
    await top_card.locator(".mailslot-close").click()
    await bottom_card.locator(".mailslot-close").click()
    await page.wait_for_function(
        "getComputedStyle(document.documentElement).getPropertyValue('--banner-top').trim() === '0px'"
        " && getComputedStyle(document.documentElement).getPropertyValue('--banner-bottom').trim() === '0px'",
        timeout=APPEAR_MS,
    )
    assert errors == []
    await context.close()


async def test_on_a_phone_a_top_banner_sits_under_the_header_and_pushes_the_page_down(
    browser: Browser, server_api: ServerApi, live_gateway: Any, tmp_path: Path
) -> None:
    user = f"demo-{uuid.uuid4().hex[:10]}"
    context = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page, errors = await open_demo(context, live_gateway.url, user)
    top = await server_api.send(user, {"layout": "banner_top", "title": "Scheduled maintenance",
                                       "body": "Tracking updates pause Sunday 02:00-03:00 UTC."})
    card = page.locator(f'[data-mailslot-id="{top["id"]}"]')
    await expect(card).to_be_visible(timeout=APPEAR_MS)
    await page.wait_for_function(
        "parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--banner-top')) > 0",
        timeout=APPEAR_MS,
    )
    await page.screenshot(path=str(tmp_path / "demo-phone.png"), animations="disabled")
    header, banner, greeting = await box(page, "header"), await box(page, f'[data-mailslot-id="{top["id"]}"]'), \
        await box(page, "h1")
    assert banner["y"] >= header["y"] + header["height"] - 1, (header, banner)
    assert greeting["y"] >= banner["y"] + banner["height"], (banner, greeting)
    assert errors == []
    await context.close()


@pytest.mark.parametrize(("utc", "greeting"), [
    (datetime(2026, 11, 30, 23, 5, tzinfo=UTC), "Good morning"),     # 08:05 in Tokyo
    (datetime(2026, 11, 30, 5, 0, tzinfo=UTC), "Good afternoon"),    # 14:00
    (datetime(2026, 11, 30, 11, 30, tzinfo=UTC), "Good evening"),    # 20:30
    (datetime(2026, 11, 30, 17, 0, tzinfo=UTC), "Good evening"),     # 02:00, still up
])
async def test_the_greeting_follows_the_browsers_local_time(
    browser: Browser, live_gateway: Any, utc: datetime, greeting: str
) -> None:
    context = await browser.new_context(timezone_id="Asia/Tokyo")
    page = await context.new_page()
    await page.clock.set_fixed_time(utc)
    await page.goto(f"{live_gateway.url}/demo")
    await expect(page.locator("h1")).to_have_text(greeting)
    await context.close()
