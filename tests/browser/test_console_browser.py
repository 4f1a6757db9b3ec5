"""The console in Chromium: sign in, the seed's whole flow, compose with preview, the person page,
disable with its count; no console errors; screenshots of each page in test-artifacts/."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Browser, Page, expect

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import ServerApi

pytestmark = pytest.mark.browser

APPEAR_MS = 10_000


async def _console(browser: Browser, live_gateway: Any) -> tuple[Page, list[str]]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(f"{live_gateway.url}/console")
    await expect(page).to_have_url(f"{live_gateway.url}/console/sign-in?next=%2Fconsole")
    # Keyboard only: the key field has focus; type, Enter.
    await page.keyboard.type(live_gateway.api_key)
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("In-App")
    return page, errors


async def test_the_seed_flow_from_required_to_complete(
    browser: Browser, live_gateway: Any, server_api: ServerApi, artifacts: Path
) -> None:
    page, errors = await _console(browser, live_gateway)
    status = page.locator("#setup-status")
    await expect(status).to_have_text("Required")
    assert live_gateway.api_key not in await page.content()
    await page.screenshot(path=str(artifacts / "console-settings-required.png"), full_page=True)

    demo = await page.context.new_page()
    user = f"browser-{uuid.uuid4().hex[:12]}"
    await demo.goto(f"{live_gateway.url}/demo")
    await demo.wait_for_function("window.mailslot && window.mailslot.__loaded", timeout=APPEAR_MS)
    await demo.fill("#demo-user", user)
    await demo.click("#demo-identify button[type=submit]")

    await page.bring_to_front()
    await page.fill("#t-to", user)
    await page.fill("#t-title", "Hello from the console")
    await page.click("#test-form button[type=submit]")
    await expect(page.locator("#test-result")).to_contain_text("Sent to " + user)
    message_id = await page.locator("#test-result").get_attribute("data-message-id")

    await expect(demo.locator(f'[data-mailslot-id="{message_id}"]')).to_be_visible(timeout=APPEAR_MS)
    await expect(page.locator("#test-state")).to_contain_text("shown", timeout=APPEAR_MS)
    await expect(status).to_have_text("Complete", timeout=APPEAR_MS)
    await expect(page.locator("#setup-detail")).to_contain_text("First message displayed on web")
    await page.screenshot(path=str(artifacts / "console-settings-complete.png"), full_page=True)
    assert errors == []


async def test_compose_preview_broadcast_person_and_disable(
    browser: Browser, live_gateway: Any, server_api: ServerApi, artifacts: Path
) -> None:
    page, errors = await _console(browser, live_gateway)
    await server_api.send("ada", {"title": "Waiting", "body": "for Ada"})

    await page.click("nav >> text=Compose")
    await page.fill("#c-title", "Hi {{ customer.id }}")
    await page.fill("#c-body", "A message drawn by the SDK")
    await page.fill("#c-action-label-0", "Open")
    await page.fill("#preview-as", "ada")
    card = page.locator("#preview-stage .mailslot-card")
    await expect(card.locator(".mailslot-title")).to_have_text("Hi ada", timeout=APPEAR_MS)
    await expect(card.locator(".mailslot-button")).to_have_text("Open")
    await page.select_option("#c-audience", "all")
    await expect(page.locator("#audience-count")).to_have_text("Audience: 1 person", timeout=APPEAR_MS)
    await page.screenshot(path=str(artifacts / "console-compose.png"), full_page=True)

    await page.click("nav >> text=People")
    await page.fill("#p-q", "ada")
    await page.keyboard.press("Enter")
    await expect(page.locator("#why")).to_contain_text("“Waiting” queued")
    await expect(page.locator("#why")).to_contain_text("no device has ever polled as this person")
    await page.screenshot(path=str(artifacts / "console-person.png"), full_page=True)

    await page.click("nav >> text=In-App settings")
    await expect(page.locator("#pending-count")).to_have_text("1")
    await page.check("#confirm-disable")
    await page.click("#in-app-form button[type=submit]")
    await expect(page.locator(".notice")).to_contain_text("1 queued messages were cancelled")
    await page.screenshot(path=str(artifacts / "console-disabled.png"), full_page=True)
    assert errors == []
