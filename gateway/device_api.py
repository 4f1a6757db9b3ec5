"""The device API: public, CORS-open handlers a web page or mobile app calls."""

from __future__ import annotations

from aiohttp import web

import storage
from storage import DeviceReport, Workspace

from .errors import Unauthorized
from .identity import check_identity
from .keys import CLOCK, CONFIG, POLLER, POOL, WORKSPACES
from .people import identify_person
from .render import device_message, json_response
from .schemas import DeviceIdentifyRequest, EventsRequest, PollRequest, parse_body

__all__ = ["events", "identify", "poll"]


async def device_workspace(request: web.Request, site_id: str, user: str, user_hash: str | None) -> Workspace:
    """The workspace of a public site id, after the identity proof its mode asks for."""
    workspace = await request.app[WORKSPACES].by_site_id(site_id)
    if workspace is None:
        raise Unauthorized("unknown `site_id`; copy it from `mailslot workspace create`", code="unknown_site")
    check_identity(workspace, user, user_hash)
    return workspace


async def poll(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), PollRequest)
    workspace = await device_workspace(request, body.site_id, body.user, body.user_hash)
    wait_s = min(body.wait, request.app[CONFIG].max_wait_s)
    answer = await request.app[POLLER].poll(workspace, body.user, body.device_id, wait_s=wait_s)
    seconds = answer.next_poll.seconds
    return json_response(
        {
            "messages": [device_message(m) for m in answer.messages],
            "next_poll_s": seconds,
            "tier": answer.next_poll.tier,
        },
        headers={"X-Mailslot-Next-Poll": str(seconds)},
    )


async def events(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), EventsRequest)
    workspace = await device_workspace(request, body.site_id, body.user, body.user_hash)
    reports = [DeviceReport(e.message_id, e.type, e.action) for e in body.events]
    # Browsers send Origin with every POST; native apps say what they are.
    platform = body.platform or ("web" if "Origin" in request.headers else "other")
    results = await storage.record_device_events(
        request.app[POOL], workspace.id, body.user, body.device_id, reports, now=request.app[CLOCK].now(),
        platform=platform,
    )
    rejected = [
        {"message_id": report.message_id, "type": report.type, "code": code}
        for report, code in zip(reports, results, strict=True)
        if code is not None
    ]
    return json_response({"accepted": len(reports) - len(rejected), "rejected": rejected})


async def identify(request: web.Request) -> web.Response:
    """Attributes from the page (the SDK's identify); under `required` proof, no proof means no write."""
    body = parse_body(await request.read(), DeviceIdentifyRequest)
    workspace = await device_workspace(request, body.site_id, body.user, body.user_hash)
    person = await identify_person(request.app[POOL], workspace.id, body.user, body.attributes)
    return json_response({"id": person.external_id, "email": person.email})
