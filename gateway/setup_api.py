"""Getting connected: a ready-made test message, and whether a device has shown anything yet.

The setup status is `required` until a device of the workspace reports its first `shown`
(recorded by the events statement itself), then `complete` with when and on which platform.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

import storage
from storage import WorkspaceSetup

from .errors import InAppDisabled
from .keys import CLOCK, POOL, WORKSPACE
from .render import json_response, server_message
from .schemas import TestMessageRequest, parse_body

__all__ = ["TEST_CAMPAIGN", "TEST_CONTENT", "setup_view", "test_message", "workspace_setup"]

TEST_CAMPAIGN = "mailslot_test"
TEST_CONTENT: dict[str, Any] = {
    "title": "Your in-app messages work",
    "body": "This test message came from mailslot. If you can read it, this app is connected "
    "and the messages you send will appear here.",
    "image_url": None,
    "actions": [{"name": "dismiss", "label": "Got it", "url": None}],
    "layout": "modal",
    "element_id": None,
}
# A test nobody saw within a day should not surprise the person weeks later.
TEST_TTL_S = 86400


def setup_view(setup: WorkspaceSetup) -> dict[str, Any]:
    if setup.first_shown_at is None:
        return {"status": "required"}
    return {"status": "complete", "first_shown_at": setup.first_shown_at, "platform": setup.platform}


async def test_message(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), TestMessageRequest)
    outcome = await storage.send_message(
        request.app[POOL],
        request[WORKSPACE].id,
        external_id=body.to.id,
        email=body.to.email,
        content=TEST_CONTENT,
        properties={},
        priority=0,
        persistent=False,
        campaign=TEST_CAMPAIGN,
        expires_at=None,
        ttl_s=TEST_TTL_S,
        now=request.app[CLOCK].now(),
    )
    if outcome.status == "disabled":
        raise InAppDisabled()
    assert outcome.message is not None
    return json_response(server_message(outcome.message), status=201)


async def workspace_setup(request: web.Request) -> web.Response:
    setup = await storage.get_workspace_setup(request.app[POOL], request[WORKSPACE].id)
    return json_response(setup_view(setup))
