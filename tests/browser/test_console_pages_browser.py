"""The console's messages, broadcasts and triggers pages in Chromium: broadcast to a filter and recall
it from the broadcasts page, the funnel's counts, triggers created and deleted; on every page,
each control is reached with Tab and shows a focus ring, and no console errors. Screenshots of
each page go to test-artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.browser

APPEAR_MS = 10_000
PRO = '{"attribute": "plan_name", "op": "eq", "value": "pro"}'

# Tags every control a keyboard user must reach, in document order; returns how many.
_TAG_CONTROLS = """() => {
  const all = document.querySelectorAll(
    'a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select:not([disabled]), ' +
    'textarea:not([disabled]), [tabindex]:not([tabindex="-1"])');
  let n = 0;
  for (const el of all) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || !el.getClientRects().length) continue;
    if (el.closest('[inert]')) continue;  // the compose preview: a picture of a card, not a control
    el.setAttribute('data-kbd', String(n++));
  }
  return n;
}"""
# The focused control's tag and whether a focus ring is drawn around it.
_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const ring = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none';
  return [el.getAttribute('data-kbd'), ring, el.outerHTML.slice(0, 120)];
}"""


async def tab_through(page: Page) -> None:
    """Tab from the top of the page: every control is reached, each with a visible focus ring."""
    total = await page.evaluate(_TAG_CONTROLS)
    await page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    reached: set[str] = set()
    for _ in range(total + 3):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(_FOCUSED)
        if focused is None or focused[0] is None:
            continue
        assert focused[1], f"no focus ring on {focused[2]}"
        reached.add(focused[0])
    missing = [await page.locator(f'[data-kbd="{i}"]').evaluate("el => el.outerHTML.slice(0, 120)")
               for i in range(total) if str(i) not in reached]
    assert not missing, f"{page.url}: not reachable by keyboard: {missing}"
    await page.evaluate("() => document.activeElement && document.activeElement.blur()")


async def _console(browser: Browser, url: str, api_key: str) -> tuple[Page, list[str]]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console",
            lambda msg: errors.append(f"{msg.text} at {msg.location['url']}") if msg.type == "error" else None)
    await page.goto(f"{url}/console")
    await tab_through(page)  # the sign-in page
    await page.fill("#api_key", api_key)
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("In-App")
    return page, errors


async def _identify(gateway: Any, people: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    async with aiohttp.ClientSession() as session:
        for user, plan in people.items():
            async with session.put(f"{gateway.url}/v1/people/{user}", json={"plan_name": plan},
                                   headers=headers) as resp:
                assert resp.status == 200, await resp.text()


async def _poll_and_show(gateway: Any, user: str) -> None:
    """A device of `user` takes its message and shows it."""
    async with aiohttp.ClientSession() as session:
        body = {"site_id": gateway.site_id, "user": user, "device_id": "phone"}
        async with session.post(f"{gateway.url}/v1/poll", json=body) as resp:
            messages = (await resp.json())["messages"]
        events = [{"message_id": messages[0]["id"], "type": "shown"}]
        async with session.post(f"{gateway.url}/v1/events", json={**body, "events": events}) as resp:
            assert resp.status == 200, await resp.text()


async def test_broadcast_to_a_filter_then_recall_it_from_the_broadcasts_page(
    browser: Browser, live_gateway: Any, artifacts: Path
) -> None:
    page, errors = await _console(browser, live_gateway.url, live_gateway.api_key)
    await tab_through(page)  # In-App settings
    await _identify(live_gateway, {"ada": "pro", "bob": "free", "cy": "pro", "di": "pro"})

    await page.click("nav >> text=Compose")
    await page.fill("#c-title", "Pro tips")
    await page.fill("#c-body", "For our pro customers")
    await page.fill("#c-campaign", "pro-tips")
    await page.select_option("#c-audience", "filter")
    await page.fill("#c-audience-value", PRO)
    await expect(page.locator("#audience-count")).to_have_text("Audience: 3 people", timeout=APPEAR_MS)
    await expect(page.locator("#preview-stage .mailslot-card")).to_be_visible(timeout=APPEAR_MS)
    await tab_through(page)
    await page.click("#broadcast-button")
    await expect(page.locator("#compose-result")).to_contain_text("Broadcast queued for 3 people")
    await _poll_and_show(live_gateway, "ada")

    await page.click("nav >> text=Broadcasts")
    await expect(page.locator("#broadcasts tbody tr")).to_have_count(1)
    await expect(page.locator("#broadcasts")).to_contain_text("3 sent")
    await expect(page.locator("#broadcasts")).to_contain_text("1 shown")
    await expect(page.locator("#campaigns")).to_contain_text("pro-tips")
    await tab_through(page)
    await page.screenshot(path=str(artifacts / "console-broadcasts.png"), full_page=True)

    await page.click("#broadcasts a >> text=Pro tips")
    funnel = page.locator("#funnel")
    await expect(funnel.locator('[data-step="queued"] .n')).to_have_text("3")
    await expect(funnel.locator('[data-step="shown"] .n')).to_have_text("1")
    await expect(funnel.locator('[data-step="recalled"] .n')).to_have_text("0")
    await expect(funnel.locator("svg polyline")).to_have_count(6)
    await expect(page.locator("#waiting-count")).to_have_text("2")
    await tab_through(page)
    await page.screenshot(path=str(artifacts / "console-broadcast.png"), full_page=True)

    # Recall without ticking the box: the browser's own check stops it; nothing is recalled.
    await page.click("#recall-form button[type=submit]")
    await expect(funnel.locator('[data-step="recalled"] .n')).to_have_text("0")
    await page.check("#confirm-recall")
    await page.click("#recall-form button[type=submit]")
    await expect(page.locator("#broadcast-notice")).to_contain_text("Recalled: 2 unshown copies taken back")
    await expect(funnel.locator('[data-step="recalled"] .n')).to_have_text("2")
    await expect(funnel.locator('[data-step="shown"] .n')).to_have_text("1")
    await expect(page.locator("#recalled-note")).to_be_visible()
    await page.screenshot(path=str(artifacts / "console-broadcast-recalled.png"), full_page=True)

    await page.click("text=pro-tips >> nth=-1")
    await expect(page.locator("h1")).to_have_text("Campaign “pro-tips”")
    await expect(page.locator('#funnel [data-step="recalled"] .n')).to_have_text("2")
    await tab_through(page)
    await page.screenshot(path=str(artifacts / "console-campaign.png"), full_page=True)

    await page.click("nav >> text=Messages")
    await expect(page.locator("#messages tbody tr")).to_have_count(3)
    await expect(page.locator("nav.counts")).to_contain_text("recalled 2")
    await tab_through(page)
    await page.screenshot(path=str(artifacts / "console-messages.png"), full_page=True)
    await page.click("#messages a >> text=Pro tips >> nth=0")
    await expect(page.locator("#events")).to_contain_text("queued")
    await tab_through(page)
    await page.screenshot(path=str(artifacts / "console-message.png"), full_page=True)

    await page.click("nav >> text=People")
    await page.fill("#p-q", "cy")
    await page.keyboard.press("Enter")
    await expect(page.locator("#why")).to_contain_text("was recalled before any device showed it")
    await tab_through(page)
    assert errors == []


async def test_triggers_are_created_and_deleted_with_their_errors_on_the_form(
    browser: Browser, live_gateway: Any, artifacts: Path
) -> None:
    page, errors = await _console(browser, live_gateway.url, live_gateway.api_key)
    await page.click("nav >> text=Triggers")
    await expect(page.locator("#triggers")).to_have_count(0)

    await page.fill("#tr-event", "signed_up")
    await page.fill("#tr-filter", "{not json")
    await page.fill("#tr-title", "Welcome aboard")
    await page.click("#trigger-form button[type=submit]")
    await expect(page.locator("#trigger-error")).to_contain_text("the filter is not JSON")
    await expect(page.locator("#tr-filter")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#tr-title")).to_have_value("Welcome aboard")
    # The refused form is answered 422, which Chromium logs as a failed load of that document: expected.
    assert errors == [f"Failed to load resource: the server responded with a status of 422 (Unprocessable Entity) "
                      f"at {live_gateway.url}/console/triggers"]
    errors.clear()
    await page.screenshot(path=str(artifacts / "console-triggers-error.png"), full_page=True)

    await page.fill("#tr-filter", PRO)
    await page.select_option("#tr-reentry", "once")
    await page.click("#trigger-form button[type=submit]")
    await expect(page.locator(".notice")).to_contain_text("Trigger created")
    row = page.locator("#triggers tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("signed_up")
    await expect(row).to_contain_text("once per person")
    await tab_through(page)
    await page.screenshot(path=str(artifacts / "console-triggers.png"), full_page=True)

    await row.locator("input[name=confirm]").check()
    await row.locator("button").click()
    await expect(page.locator(".notice")).to_contain_text("Trigger deleted")
    await expect(page.locator("#triggers")).to_have_count(0)
    await expect(page.locator("#deleted-h")).to_be_visible()
    assert errors == []
