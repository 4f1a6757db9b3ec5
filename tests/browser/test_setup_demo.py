"""The demo page shows the setup status: `required`, then `complete (web, time)` once shown."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Browser, expect

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import ServerApi

pytestmark = pytest.mark.browser

APPEAR_MS = 5_000
# The page asks every 3 s; one missed round plus the answer stays well inside this.
STATUS_MS = 10_000


async def test_demo_page_shows_setup_complete_after_the_first_shown_message(
    browser: Browser, server_api: ServerApi, live_gateway: Any, artifacts: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{live_gateway.url}/demo")
    status = page.locator("#setup-status")
    await expect(status).to_have_text("Setup: required", timeout=STATUS_MS)

    user = f"browser-{uuid.uuid4().hex[:12]}"
    await page.wait_for_function("window.mailslot && window.mailslot.__loaded", timeout=APPEAR_MS)
    await page.fill("#demo-user", user)
    async with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/v1/poll") and user in (r.post_data or ""), timeout=10_000
    ) as poll:
        await page.click("#demo-identify button[type=submit]")
    await poll.value

    sent = await server_api.send(user, {"layout": "modal", "title": "Hello from setup", "body": "Shown."})
    # The `shown` report rides on the next poll (acknowledge on the next poll) or goes to /v1/events.
    async with page.expect_request(
        lambda r: r.url.endswith(("/v1/events", "/v1/poll")) and '"type":"shown"' in (r.post_data or ""),
        timeout=10_000,
    ):
        await expect(page.locator(f'[data-mailslot-id="{sent["id"]}"]')).to_be_visible(timeout=APPEAR_MS)

    await expect(status).to_contain_text("Setup: complete (web, ", timeout=STATUS_MS)
    await expect(status).to_have_class("pill ok")
    await page.locator(f'[data-mailslot-id="{sent["id"]}"] .mailslot-close').click()
    await page.screenshot(path=str(artifacts / "demo-setup.png"), animations="disabled")
    assert errors == []
    await context.close()
