"""Getting connected: a ready-made test message, and whether a device has shown anything yet.

The setup status is `required` until a device of the workspace reports its first `shown`
(recorded by the events statement itself), then `complete` with when and on which platform.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import asyncpg

import storage
from storage import NewMessage, WorkspaceSetup

from .sends import Recipient, Sent, send_message

__all__ = ["TEST_CAMPAIGN", "TEST_MESSAGE", "send_test_message", "workspace_setup"]

TEST_CAMPAIGN = "mailslot_test"
TEST_MESSAGE = NewMessage(
    content={
        "title": "Your in-app messages work",
        "body": "This test message came from mailslot. If you can read it, this app is connected "
        "and the messages you send will appear here.",
        "image_url": None,
        "actions": [{"name": "dismiss", "label": "Got it", "url": None}],
        "layout": "modal",
        "element_id": None,
    },
    campaign=TEST_CAMPAIGN,
    # A test nobody saw within a day should not surprise the person weeks later.
    ttl_s=86400,
)


async def send_test_message(
    pool: asyncpg.Pool, workspace_id: int, to: Recipient, now: datetime | None, *,
    content: dict[str, Any] | None = None,
) -> Sent:
    """The ready-made test message; `content` (the console's form: layout, title, body) replaces its fields."""
    message = TEST_MESSAGE
    if content:
        assert TEST_MESSAGE.content is not None
        message = dataclasses.replace(TEST_MESSAGE, content={**TEST_MESSAGE.content, **content})
    return await send_message(pool, workspace_id, to, message, now=now)


async def workspace_setup(pool: asyncpg.Pool, workspace_id: int) -> WorkspaceSetup:
    return await storage.get_workspace_setup(pool, workspace_id)
