"""Test sends and setup status: `required` until a device shows a message, then `complete`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from gateway.core.clock import FixedClock
from gateway.core.demo import create_demo_workspace
from gateway.core.identity import OFF_WARNING
from tests.helpers import Api, Reply

ORIGIN = {"Origin": "https://app.example.com"}
# The fixtures' workspaces (and the demo) run without identity proof, and the status says what that allows.
OFF = {"identity_mode": "off", "identity_warning": OFF_WARNING}


async def setup(api: Api) -> Reply:
    reply = await api.request("GET", "/v1/workspace/setup")
    assert reply.status == 200, reply
    return reply


async def send_test(api: Api, to: dict[str, str]) -> Reply:
    return await api.request("POST", "/v1/test-message", json={"to": to})


# Test sends


async def test_a_test_message_is_queued_for_the_person(api: Api, clock: FixedClock) -> None:
    sent = await send_test(api, {"id": "dev-1"})
    assert sent.status == 201, sent
    body = sent.body
    assert body["to"] == {"id": "dev-1", "email": None}
    assert body["state"] == "queued"
    assert body["campaign"] == "mailslot_test"
    assert body["content"]["title"] == "Your in-app messages work"
    assert body["content"]["body"]
    assert body["content"]["layout"] == "modal"
    assert body["content"]["actions"] == [{"name": "dismiss", "label": "Got it", "url": None}]
    assert datetime.fromisoformat(body["created_at"]) == clock.now()

    # An ordinary message: the same lifecycle, first device wins.
    polled = await api.poll("dev-1", "laptop")
    assert polled.message_ids == [body["id"]]
    assert (await api.poll("dev-1", "phone")).message_ids == []
    assert await api.event_types(body["id"]) == ["queued", "offered"]


async def test_a_test_message_can_go_to_an_email(api: Api) -> None:
    await api.identify("dev-1", email="dev@example.com")
    sent = await send_test(api, {"email": "Dev@Example.com"})
    assert sent.status == 201, sent
    assert sent.body["to"] == {"id": "dev-1", "email": "dev@example.com"}
    assert (await api.poll("dev-1", "laptop")).message_ids == [sent.body["id"]]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-to"),
        pytest.param({"to": {}}, id="empty-to"),
        pytest.param({"to": {"id": "a", "email": "a@example.com"}}, id="id-and-email"),
        pytest.param({"to": {"email": "not-an-email"}}, id="bad-email"),
        pytest.param({"to": {"id": ""}}, id="empty-id"),
        pytest.param({"to": {"id": "a"}, "content": {"title": "t"}}, id="unknown-field"),
        pytest.param({"to": "a"}, id="to-not-object"),
    ],
)
async def test_bad_test_message_bodies_are_422(api: Api, pool: asyncpg.Pool, body: dict[str, Any]) -> None:
    refused = await api.request("POST", "/v1/test-message", json=body)
    assert (refused.status, refused.error_code) == (422, "invalid_fields"), refused
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_test_message_refusals(api: Api) -> None:
    anonymous = await api.request("POST", "/v1/test-message", json={"to": {"id": "a"}}, auth=False)
    assert (anonymous.status, anonymous.error_code) == (401, "unauthorized")
    malformed = await api.request("POST", "/v1/test-message", data=b"[", headers={"Content-Type": "application/json"})
    assert (malformed.status, malformed.error_code) == (400, "malformed_json")
    assert (await api.patch_workspace(in_app_enabled=False)).status == 200
    disabled = await send_test(api, {"id": "a"})
    assert (disabled.status, disabled.error_code) == (409, "in_app_disabled")


# Setup status


async def test_setup_completes_when_the_first_message_is_shown_not_before(api: Api, clock: FixedClock) -> None:
    assert (await setup(api)).body == {"status": "required", **OFF}

    sent = await send_test(api, {"id": "dev-1"})
    assert (await setup(api)).body == {"status": "required", **OFF}, "queued is not enough"
    await api.poll("dev-1", "laptop")
    assert (await setup(api)).body == {"status": "required", **OFF}, "offered is not enough"
    # A report the gateway rejects (another device) is not enough either.
    rejected = await api.report("dev-1", "phone", {"message_id": sent.body["id"], "type": "shown"}, headers=ORIGIN)
    assert rejected.body["accepted"] == 0
    assert (await setup(api)).body == {"status": "required", **OFF}

    clock.advance(seconds=7)
    shown_at = clock.now()
    shown = await api.request(
        "POST", "/v1/events", auth=False, headers=ORIGIN,
        json={"site_id": api.site_id, "user": "dev-1", "device_id": "laptop",
              "events": [{"message_id": sent.body["id"], "type": "shown"}]},
    )
    assert shown.body == {"accepted": 1, "rejected": []}
    status = (await setup(api)).body
    assert status == {
        "status": "complete", "first_shown_at": status["first_shown_at"], "platform": "web", **OFF,
    }
    assert datetime.fromisoformat(status["first_shown_at"]) == shown_at

    # It records the first time only.
    clock.advance(seconds=60)
    later = await api.send("dev-2")
    await api.poll("dev-2", "ipad")
    await api.report("dev-2", "ipad", {"message_id": later.body["id"], "type": "shown"}, platform="ios")
    assert (await setup(api)).body == status


async def test_the_platform_a_device_names_wins(api: Api) -> None:
    sent = await api.send("dev-1")
    await api.poll("dev-1", "iphone")
    reply = await api.report("dev-1", "iphone", {"message_id": sent.body["id"], "type": "shown"},
                             platform="ios", headers=ORIGIN)
    assert reply.body["accepted"] == 1
    assert (await setup(api)).body["platform"] == "ios"


async def test_without_origin_or_platform_the_platform_is_other(api: Api) -> None:
    sent = await api.send("dev-1")
    await api.poll("dev-1", "kiosk")
    await api.show("dev-1", "kiosk", sent.body["id"])
    assert (await setup(api)).body["platform"] == "other"


async def test_a_repeated_shown_report_does_not_complete_setup_again(api: Api, clock: FixedClock) -> None:
    sent = await api.send("dev-1")
    await api.poll("dev-1", "phone")
    await api.report("dev-1", "phone", {"message_id": sent.body["id"], "type": "shown"}, platform="android")
    first = (await setup(api)).body
    clock.advance(seconds=30)
    await api.report("dev-1", "phone", {"message_id": sent.body["id"], "type": "shown"}, platform="web")
    assert (await setup(api)).body == first


async def test_dismissing_an_offered_message_is_not_a_shown(api: Api) -> None:
    """Only a `shown` report completes setup (the SDK always sends `shown` first)."""
    sent = await api.send("dev-1")
    await api.poll("dev-1", "phone")
    assert (await api.dismiss("dev-1", "phone", sent.body["id"])).body["accepted"] == 1
    assert (await setup(api)).body == {"status": "required", **OFF}


async def test_setup_status_is_per_workspace(api: Api, other_api: Api) -> None:
    sent = await other_api.send("dev-1")
    await other_api.poll("dev-1", "phone")
    await other_api.show("dev-1", "phone", sent.body["id"])
    assert (await setup(other_api)).body["status"] == "complete"
    assert (await setup(api)).body == {"status": "required", **OFF}


async def test_concurrent_first_shows_record_one_of_them(api: Api) -> None:
    devices = {"phone-a": "ios", "phone-b": "android", "tab-c": "web", "box-d": "other"}
    sent = {device: await api.send(f"user-{device}") for device in devices}
    for device in devices:
        await api.poll(f"user-{device}", device)
    replies = await asyncio.wait_for(asyncio.gather(*(
        api.report(f"user-{device}", device, {"message_id": sent[device].body["id"], "type": "shown"},
                   platform=platform)
        for device, platform in devices.items()
    )), timeout=30)
    assert [r.body["accepted"] for r in replies] == [1, 1, 1, 1]
    status = (await setup(api)).body
    assert status["status"] == "complete" and status["platform"] in devices.values()


async def test_a_bad_platform_is_422(api: Api) -> None:
    sent = await api.send("dev-1")
    await api.poll("dev-1", "phone")
    for platform in ("windows", "", 3, None):
        reply = await api.report("dev-1", "phone", {"message_id": sent.body["id"], "type": "shown"}, platform=platform)
        if platform is None:  # null is "not given"
            assert reply.status == 200, reply
            continue
        assert (reply.status, reply.error_code) == (422, "invalid_fields"), (platform, reply)


async def test_setup_needs_the_api_key(api: Api) -> None:
    anonymous = await api.request("GET", "/v1/workspace/setup", auth=False)
    assert (anonymous.status, anonymous.error_code) == (401, "unauthorized")
    wrong = await api.request("POST", "/v1/workspace/setup", json={})
    assert wrong.status == 405


async def test_a_test_message_shown_completes_setup(api: Api) -> None:
    sent = await send_test(api, {"id": "dev-1"})
    await api.poll("dev-1", "laptop")
    await api.show("dev-1", "laptop", sent.body["id"])
    assert (await setup(api)).body["status"] == "complete"


# The demo page's status route


async def test_demo_setup_reports_the_demo_workspace_without_credentials(api: Api, pool: asyncpg.Pool) -> None:
    missing = await api.request("GET", "/demo/setup", auth=False)
    assert (missing.status, missing.error_code) == (404, "no_demo_workspace")

    created = await create_demo_workspace(pool)  # as `mailslot serve` does: identity proof off
    assert created is not None
    demo = Api(api.client, created)
    assert (await demo.request("GET", "/demo/setup", auth=False)).body == {"status": "required", **OFF}
    # Another workspace's first show is not the demo's.
    sent = await api.send("dev-1")
    await api.poll("dev-1", "phone")
    await api.show("dev-1", "phone", sent.body["id"])
    assert (await demo.request("GET", "/demo/setup", auth=False)).body == {"status": "required", **OFF}

    sent = await demo.send("dev-1")
    await demo.poll("dev-1", "browser")
    await demo.report("dev-1", "browser", {"message_id": sent.body["id"], "type": "shown"}, platform="web")
    status = await demo.request("GET", "/demo/setup", auth=False)
    assert status.body["status"] == "complete" and status.body["platform"] == "web"
    assert status.headers["Cache-Control"] == "no-store"
