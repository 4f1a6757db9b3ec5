"""The device API: public, CORS-open handlers a web page or mobile app calls.

Each handler first resolves the workspace of the body's `site_id` under the identity proof the
workspace asks for (the device's counterpart of the server API's auth middleware, which cannot
run before the body is parsed), then makes one call into the core.
"""

from __future__ import annotations

from aiohttp import web

from storage import DeviceReport

from ..core import people
from ..core.devices import device_workspace, report_events
from .keys import CLOCK, CONFIG, DEVICE_POLLS, POLLER, POOL, RATE_LIMITER, WORKSPACES
from .schemas import DeviceIdentifyRequest, EventsRequest, PollRequest, parse_body
from .views import device_message, json_response

__all__ = ["events", "identify", "poll"]


async def poll(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), PollRequest)
    workspace = await device_workspace(
        request.app[WORKSPACES], body.site_id, body.user, body.user_hash, body.user_token, request.app[RATE_LIMITER],
        now=request.app[CLOCK].now(),
    )
    wait_s = min(body.wait, request.app[CONFIG].max_wait_s)
    request.app[DEVICE_POLLS].record(workspace.id, body.user, body.device_id)
    answer = await request.app[POLLER].poll(workspace, body.user, body.device_id, wait_s=wait_s)
    seconds = answer.next_poll.seconds
    return json_response(
        {
            "messages": [device_message(m) for m in answer.messages],
            "lease_s": {str(message_id): left for message_id, left in answer.leases.items()},
            "next_poll_s": seconds,
            "tier": answer.next_poll.tier,
        },
        headers={"X-Mailslot-Next-Poll": str(seconds)},
    )


async def events(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), EventsRequest)
    workspace = await device_workspace(
        request.app[WORKSPACES], body.site_id, body.user, body.user_hash, body.user_token, request.app[RATE_LIMITER],
        events=len(body.events), now=request.app[CLOCK].now(),
    )
    reports = [DeviceReport(e.message_id, e.type, e.action) for e in body.events]
    # Browsers send Origin with every POST; native apps say what they are.
    platform = body.platform or ("web" if "Origin" in request.headers else "other")
    rejections = await report_events(
        request.app[POOL], workspace.id, body.user, body.device_id, reports, platform=platform,
        now=request.app[CLOCK].now(),
    )
    rejected = [
        {"message_id": r.report.message_id, "type": r.report.type, "code": r.code} for r in rejections
    ]
    return json_response({"accepted": len(reports) - len(rejected), "rejected": rejected})


async def identify(request: web.Request) -> web.Response:
    """Attributes from the page (the SDK's identify), kept apart from the backend's; under
    `required` proof, no proof means no write."""
    body = parse_body(await request.read(), DeviceIdentifyRequest)
    workspace = await device_workspace(
        request.app[WORKSPACES], body.site_id, body.user, body.user_hash, body.user_token, request.app[RATE_LIMITER],
        now=request.app[CLOCK].now(),
    )
    person = await people.identify_device_person(request.app[POOL], workspace.id, body.user, body.attributes)
    return json_response({"id": person.external_id, "email": person.email})
