"""The web SDK where people already are: messages at once, one poll per browser, page rules.

The pages live on another origin than the gateway (the `customer_site` fixture). Every wait has a
timeout; no test sleeps.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, expect
from test_sdk_browser import card, new_user, open_app

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest.py
    from conftest import CustomerSite, ServerApi

pytestmark = pytest.mark.browser

# The bar: a held poll answers the moment a message is sent, so a visible page shows each
# message within a second, the first and every one after it (it used to wait next_poll_s, 10 s).
AT_ONCE_MS = 1_000


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
