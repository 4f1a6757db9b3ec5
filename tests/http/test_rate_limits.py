"""Rate limits over HTTP: each trips with 429 + Retry-After + the JSON error, for its own key only,
and recovers once the clock moves on; X-Forwarded-For only from trusted proxies; refusals counted."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

import storage
from gateway.config import Config, _networks
from gateway.core.clock import FixedClock
from gateway.core.ratelimits import parse_limit
from gateway.http.app import create_app
from tests.helpers import Api, Reply

HOURLY = "3/h:3"  # three at once, then one more an hour (20 minutes) later: never refilled by accident

MakeApis = Callable[..., Awaitable[tuple[Api, Api]]]


@pytest.fixture
def make_apis(config: Config, clock: FixedClock, aiohttp_client, pool: asyncpg.Pool) -> MakeApis:  # type: ignore[no-untyped-def]
    """A gateway with these settings (limits as `RATE/UNIT:BURST` text; unnamed limits off) and two workspaces."""

    async def make(**settings: Any) -> tuple[Api, Api]:
        limits = {"rate_limit_address": "off", "rate_limit_site": "off", "rate_limit_person": "off",
                  "rate_limit_events": "off", "rate_limit_api_key": "off"}
        limits.update({k: v for k, v in settings.items() if k.startswith("rate_limit_")})
        others = {k: v for k, v in settings.items() if not k.startswith("rate_limit_")}
        if "trusted_proxies" in others:
            others["trusted_proxies"] = _networks(others["trusted_proxies"])
        changed = dataclasses.replace(config, **{k: parse_limit(v) for k, v in limits.items()}, **others)
        client = await aiohttp_client(create_app(changed, clock=clock, rng=random.Random(7)))
        first = await storage.create_workspace(pool, "acme-" + uuid.uuid4().hex[:6], identity_mode="off")
        second = await storage.create_workspace(pool, "globex-" + uuid.uuid4().hex[:6], identity_mode="off")
        return Api(client, first), Api(client, second)

    return make


async def poll(api: Api, user: str = "ada", *, address: str | None = None) -> Reply:
    headers = {"X-Forwarded-For": address} if address else {}
    body = {"site_id": api.site_id, "user": user, "device_id": "phone"}
    return await api.request("POST", "/v1/poll", json=body, headers=headers, auth=False)


def assert_limited(reply: Reply, retry_after: int | None = None) -> None:
    assert reply.status == 429, reply
    assert reply.error_code == "rate_limited", reply
    assert int(reply.headers["Retry-After"]) >= 1, reply.headers
    if retry_after is not None:
        assert int(reply.headers["Retry-After"]) == retry_after, reply.headers
    assert reply.headers["Content-Type"].startswith("application/json")


async def test_the_address_limit_trips_for_that_address_only_and_recovers(
    make_apis: MakeApis, clock: FixedClock,
) -> None:
    api, _ = await make_apis(rate_limit_address=HOURLY, trusted_proxies="127.0.0.1")
    for _ in range(3):
        assert (await poll(api, address="203.0.113.1")).status == 200
    refused = await poll(api, address="203.0.113.1")
    assert_limited(refused, retry_after=1200)
    assert refused.headers["Access-Control-Allow-Origin"] == "*"  # a browser can read it
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]
    assert "client address" in refused.body["error"]["message"]
    # Another person from the same address is refused too; another address is not.
    assert_limited(await poll(api, "bob", address="203.0.113.1"))
    assert (await poll(api, address="203.0.113.2")).status == 200
    # Probes and scrapes are not counted.
    for _ in range(5):
        assert (await api.request("GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.1"})).status == 200
    assert await api.metric("mailslot_rate_limited_total", group="device", reason="address") == 2

    clock.advance(minutes=20)
    assert (await poll(api, address="203.0.113.1")).status == 200
    assert_limited(await poll(api, address="203.0.113.1"))


async def test_the_address_limit_counts_public_pages_and_unknown_paths(make_apis: MakeApis) -> None:
    api, _ = await make_apis(rate_limit_address=HOURLY)
    for path in ("/demo", "/nowhere", "/v1/nowhere"):
        assert (await api.request("GET", path, auth=False)).status in (404, 200)
    refused = await api.request("GET", "/nowhere", auth=False)
    assert_limited(refused)
    assert await api.metric("mailslot_rate_limited_total", group="public", reason="address") == 1


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(make_apis: MakeApis) -> None:
    api, _ = await make_apis(rate_limit_address=HOURLY, trusted_proxies="10.0.0.0/8")
    for n in range(3):
        assert (await poll(api, address=f"198.51.100.{n}")).status == 200
    # Every request came from 127.0.0.1, whatever the header claimed.
    assert_limited(await poll(api, address="198.51.100.99"))
    assert_limited(await poll(api))


async def test_a_trusted_proxy_is_believed_only_for_the_hop_it_added(make_apis: MakeApis) -> None:
    api, _ = await make_apis(rate_limit_address=HOURLY, trusted_proxies="127.0.0.1")
    for spoof in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        assert (await poll(api, address=f"{spoof}, 203.0.113.5")).status == 200
    assert_limited(await poll(api, address="9.9.9.9, 203.0.113.5"))
    assert_limited(await poll(api, address="203.0.113.5"))
    # With no header, the proxy itself is the client.
    assert (await poll(api)).status == 200


async def test_the_site_limit_trips_for_that_site_only_and_recovers(make_apis: MakeApis, clock: FixedClock) -> None:
    api, other = await make_apis(rate_limit_site=HOURLY)
    for user in ("ada", "bob", "cy"):
        assert (await poll(api, user)).status == 200
    refused = await poll(api, "dee")
    assert_limited(refused, retry_after=1200)
    assert "site" in refused.body["error"]["message"]
    identify = {"site_id": api.site_id, "user": "dee", "attributes": {"plan": "pro"}}
    assert_limited(await api.request("POST", "/v1/identify", json=identify, auth=False))
    assert (await poll(other, "dee")).status == 200
    assert await api.metric("mailslot_rate_limited_total", group="device", reason="site") == 2
    clock.advance(minutes=20)
    assert (await poll(api, "dee")).status == 200


async def test_the_person_limit_trips_for_that_person_only_and_recovers(
    make_apis: MakeApis, clock: FixedClock,
) -> None:
    api, other = await make_apis(rate_limit_person=HOURLY)
    for _ in range(3):
        assert (await poll(api, "ada")).status == 200
    refused = await poll(api, "ada")
    assert_limited(refused, retry_after=1200)
    assert "person" in refused.body["error"]["message"]
    assert (await poll(api, "bob")).status == 200
    assert (await poll(other, "ada")).status == 200  # the same id in another workspace
    assert await api.metric("mailslot_rate_limited_total", group="device", reason="person") == 1
    clock.advance(minutes=20)
    assert (await poll(api, "ada")).status == 200
    assert_limited(await poll(api, "ada"))


async def test_the_person_limit_follows_the_identity_proof(make_apis: MakeApis) -> None:
    """Under `required`, a request without a valid proof is refused before it can use the allowance."""
    api, _ = await make_apis(rate_limit_person="1/h:1")
    assert (await api.patch_workspace(identity_mode="required")).status == 200
    for _ in range(3):
        assert (await poll(api, "ada")).status == 403
    body = {"site_id": api.site_id, "user": "ada", "device_id": "phone", "user_hash": api.hash_for("ada")}
    assert (await api.request("POST", "/v1/poll", json=body, auth=False)).status == 200
    assert_limited(await api.request("POST", "/v1/poll", json=body, auth=False))


def report_of(api: Api, user: str, count: int) -> dict[str, Any]:
    events = [{"message_id": str(uuid.uuid4()), "type": "shown"} for _ in range(count)]
    return {"site_id": api.site_id, "user": user, "device_id": "phone", "events": events}


async def test_the_events_quota_counts_each_reported_and_tracked_event(make_apis: MakeApis, clock: FixedClock) -> None:
    api, other = await make_apis(rate_limit_events="150/h:150")
    first = await api.request("POST", "/v1/events", json=report_of(api, "ada", 100), auth=False)
    assert first.status == 200, first
    assert len(first.body["rejected"]) == 100  # unknown messages: still events the person wrote
    refused = await api.request("POST", "/v1/events", json=report_of(api, "ada", 100), auth=False)
    assert_limited(refused, retry_after=1200)
    assert "events" in refused.body["error"]["message"]
    # Tracked events count one each, from the same allowance.
    track = {"site_id": api.site_id, "user": "ada", "name": "clicked"}
    for _ in range(50):
        assert (await api.request("POST", "/v1/track", json=track, auth=False)).status == 200
    assert_limited(await api.request("POST", "/v1/track", json=track, auth=False))
    # Polls are not events; other people and workspaces have their own allowance.
    assert (await poll(api, "ada")).status == 200
    assert (await api.request("POST", "/v1/events", json=report_of(api, "bob", 100), auth=False)).status == 200
    assert (await other.request("POST", "/v1/events", json=report_of(other, "ada", 100), auth=False)).status == 200
    assert await api.metric("mailslot_rate_limited_total", group="device", reason="events") == 2
    clock.advance(hours=1)
    assert (await api.request("POST", "/v1/events", json=report_of(api, "ada", 100), auth=False)).status == 200


async def test_tracked_event_data_is_capped(make_apis: MakeApis) -> None:
    api, _ = await make_apis(max_event_data_bytes=100)
    fits = {"site_id": api.site_id, "user": "ada", "name": "e", "data": {"blob": "x" * 89}}  # 100 bytes of JSON
    assert (await api.request("POST", "/v1/track", json=fits, auth=False)).status == 200
    too_big = {**fits, "data": {"blob": "x" * 90}}
    refused = await api.request("POST", "/v1/track", json=too_big, auth=False)
    assert refused.status == 422, refused
    assert refused.error_code == "invalid_fields"
    assert "$.data" in refused.body["error"]["message"]
    # The backend's events are the backend's word: only the body limit applies.
    backend = {"name": "e", "data": too_big["data"]}
    assert (await api.request("POST", "/v1/people/ada/events", json=backend)).status == 200


async def test_the_api_key_limit_trips_for_that_workspace_only_and_recovers(
    make_apis: MakeApis, clock: FixedClock,
) -> None:
    api, other = await make_apis(rate_limit_api_key=HOURLY, rate_limit_address="1/h:1")
    for _ in range(3):  # a good key does not use the address's allowance
        assert (await api.request("GET", "/v1/workspace")).status == 200
    refused = await api.request("GET", "/v1/workspace")
    assert_limited(refused, retry_after=1200)
    assert "API key" in refused.body["error"]["message"]
    assert (await other.request("GET", "/v1/workspace")).status == 200
    assert await api.metric("mailslot_rate_limited_total", group="server", reason="api_key") == 1
    clock.advance(minutes=20)
    assert (await api.request("GET", "/v1/workspace")).status == 200


async def test_wrong_api_keys_use_the_address_allowance(make_apis: MakeApis, clock: FixedClock) -> None:
    api, _ = await make_apis(rate_limit_address=HOURLY, trusted_proxies="127.0.0.1")
    guess = {"Authorization": "Bearer msk_guess", "X-Forwarded-For": "203.0.113.66"}
    for headers in (guess, {"X-Forwarded-For": "203.0.113.66"}, guess):
        assert (await api.request("GET", "/v1/workspace", headers=headers, auth=False)).status == 401
    assert_limited(await api.request("GET", "/v1/workspace", headers=guess, auth=False))
    # Even the right key waits from that address: the check comes before the key is looked up.
    assert_limited(await api.request("GET", "/v1/workspace", headers={"X-Forwarded-For": "203.0.113.66"}))
    assert (await api.request("GET", "/v1/workspace", headers={"X-Forwarded-For": "203.0.113.67"})).status == 200
    assert await api.metric("mailslot_rate_limited_total", group="server", reason="address") == 2
    clock.advance(minutes=20)
    assert (await api.request("GET", "/v1/workspace", headers={"X-Forwarded-For": "203.0.113.66"})).status == 200


async def test_a_workspace_sets_its_own_limits(make_apis: MakeApis, clock: FixedClock) -> None:
    api, other = await make_apis(rate_limit_person="100/s:100")
    read = await api.request("GET", "/v1/workspace")
    assert read.body["rate_limits"] == {
        "site": None, "person": {"rate_per_s": 100, "burst": 100}, "events": None, "api_key": None,
    }
    patched = await api.patch_workspace(rate_limits={"person": {"rate_per_s": 0.001, "burst": 2}})
    assert patched.status == 200, patched
    assert patched.body["rate_limits"]["person"] == {"rate_per_s": 0.001, "burst": 2}
    assert (await api.request("GET", "/v1/workspace")).body["rate_limits"]["person"]["burst"] == 2
    for _ in range(2):
        assert (await poll(api, "ada")).status == 200
    assert_limited(await poll(api, "ada"), retry_after=1000)
    for _ in range(3):
        assert (await poll(other, "ada")).status == 200  # the other workspace keeps the server's

    # Other limits are left as they are; null goes back to the server's.
    patched = await api.patch_workspace(rate_limits={"site": {"rate_per_s": 500, "burst": 1000}})
    assert patched.body["rate_limits"]["person"] == {"rate_per_s": 0.001, "burst": 2}
    reset = await api.patch_workspace(rate_limits={"person": None})
    assert reset.body["rate_limits"]["person"] == {"rate_per_s": 100, "burst": 100}
    assert reset.body["rate_limits"]["site"] == {"rate_per_s": 500, "burst": 1000}
    # ada's bucket, overdrawn by the old limit, counts as just emptied under the new one.
    assert_limited(await poll(api, "ada"), retry_after=1)
    clock.advance(seconds=1)
    assert (await poll(api, "ada")).status == 200


@pytest.mark.parametrize(
    "rate_limits",
    [
        {"person": {"rate_per_s": 0, "burst": 5}},
        {"person": {"rate_per_s": -1, "burst": 5}},
        {"person": {"rate_per_s": 1, "burst": 0}},
        {"person": {"rate_per_s": 1}},
        {"person": {"rate_per_s": "fast", "burst": 5}},
        {"person": {"rate_per_s": 1e12, "burst": 5}},
        {"person": {"rate_per_s": 1, "burst": 5, "window": 3}},
        {"address": {"rate_per_s": 1, "burst": 5}},
        {"person": "10/s"},
        {"person": []},
        "fast",
        [],
    ],
)
async def test_bad_workspace_limits_are_refused(api: Api, rate_limits: Any) -> None:
    refused = await api.patch_workspace(rate_limits=rate_limits)
    assert refused.status == 422, refused
    assert refused.error_code == "invalid_fields"
    assert (await api.request("GET", "/v1/workspace")).body["rate_limits"]["person"] == {
        "rate_per_s": 10, "burst": 300,
    }


async def test_limits_can_be_turned_off(make_apis: MakeApis) -> None:
    api, _ = await make_apis(rate_limits=False, rate_limit_address="1/h:1", rate_limit_person="1/h:1",
                             rate_limit_api_key="1/h:1", rate_limit_site="1/h:1", rate_limit_events="1/h:1")
    for _ in range(5):
        assert (await poll(api, "ada")).status == 200
        assert (await api.request("GET", "/v1/workspace")).status == 200
        assert (await api.request("POST", "/v1/events", json=report_of(api, "ada", 10), auth=False)).status == 200
    assert (await api.request("GET", "/v1/workspace")).body["rate_limits"] == {
        "site": None, "person": None, "events": None, "api_key": None,
    }


async def test_a_held_poll_counts_once(make_apis: MakeApis) -> None:
    api, _ = await make_apis(rate_limit_person="2/h:2")
    held = api.hold("ada", "phone", wait=5)
    sent = await api.send("ada")
    answer = await held
    assert answer.status == 200 and answer.message_ids == [sent.body["id"]]
    assert (await poll(api, "ada")).status == 200
    assert_limited(await poll(api, "ada"))
