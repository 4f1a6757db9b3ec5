"""The device API: public, CORS-open handlers a web page or mobile app calls.

Each handler first resolves the workspace of the body's `site_id` under the identity proof the
workspace asks for (the device's counterpart of the server API's auth middleware, which cannot
run before the body is parsed), then makes one call into the core (a poll two: the reports it
carries, then the claim).
"""

from __future__ import annotations

from aiohttp import web

from storage import DeviceReport

from ..core import devices, people
from ..core.devices import device_workspace
from .connections import hold_connection
from .keys import CLOCK, CONFIG, DEVICE_POLLS, POLLER, POOL, RATE_LIMITER, WORKSPACES
from .schemas import DeviceIdentifyRequest, EventsRequest, parse_body, parse_poll
from .views import device_message, json_response

__all__ = ["events", "identify", "poll"]


async def poll(request: web.Request) -> web.Response:
    body = parse_poll(await request.read())
    app = request.app
    now = app[CLOCK].now()
    workspace = await device_workspace(
        app[WORKSPACES], body.site_id, body.user, body.user_hash, body.user_token, app[RATE_LIMITER],
        events=len(body.events), now=now, anonymous_id=body.anonymous_id,
    )
    reports = [DeviceReport(e.message_id, e.type, e.action) for e in body.events]
    rejections = await devices.report_events(
        app[POOL], workspace.id, body.user, body.device_id, reports,
        platform=_platform(request, body.platform), now=now, anonymous_id=body.anonymous_id,
    ) if reports else []
    wait_s = min(body.wait, app[CONFIG].max_wait_s)
    if wait_s > 0:
        hold_connection(request)
    claim = devices.poll(
        app[POLLER], app[DEVICE_POLLS], workspace, body.user, body.device_id,
        wait_s=wait_s, anonymous_id=body.anonymous_id, reports=reports, rejections=rejections,
    )
    del body  # a held poll keeps this frame alive while it waits: not the parsed request too
    answer = await claim
    seconds = answer.next_poll.seconds
    document = {
        "messages": [device_message(m) for m in answer.messages],
        "lease_s": {str(message_id): left for message_id, left in answer.leases.items()},
        "next_poll_s": seconds,
        "tier": answer.next_poll.tier,
    }
    if reports:
        document["events"] = _accepted(len(reports), rejections)
    return json_response(document, headers={"X-Mailslot-Next-Poll": str(seconds)})


def _platform(request: web.Request, given: str | None) -> str:
    """Browsers send Origin with every POST; native apps say what they are."""
    return given or ("web" if "Origin" in request.headers else "other")


def _accepted(reported: int, rejections: list[devices.Rejection]) -> dict[str, object]:
    rejected = [{"message_id": r.report.message_id, "type": r.report.type, "code": r.code} for r in rejections]
    return {"accepted": reported - len(rejected), "rejected": rejected}


async def events(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), EventsRequest)
    workspace = await device_workspace(
        request.app[WORKSPACES], body.site_id, body.user, body.user_hash, body.user_token, request.app[RATE_LIMITER],
        events=len(body.events), now=request.app[CLOCK].now(), anonymous_id=body.anonymous_id,
    )
    reports = [DeviceReport(e.message_id, e.type, e.action) for e in body.events]
    rejections = await devices.report_events(
        request.app[POOL], workspace.id, body.user, body.device_id, reports,
        platform=_platform(request, body.platform), now=request.app[CLOCK].now(), anonymous_id=body.anonymous_id,
    )
    return json_response(_accepted(len(reports), rejections))


async def identify(request: web.Request) -> web.Response:
    """Attributes from the page (the SDK's identify), kept apart from the backend's; under
    `required` proof, no proof means no write. With `anonymous_id`, the visitor this device was
    merges into the person."""
    body = parse_body(await request.read(), DeviceIdentifyRequest)
    workspace = await device_workspace(
        request.app[WORKSPACES], body.site_id, body.user, body.user_hash, body.user_token, request.app[RATE_LIMITER],
        now=request.app[CLOCK].now(),
    )
    person = await people.identify_device_person(
        request.app[POOL], workspace.id, body.user, body.attributes, anonymous_id=body.anonymous_id
    )
    return json_response({"id": person.external_id, "email": person.email})
