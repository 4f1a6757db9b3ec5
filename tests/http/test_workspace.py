"""Workspace settings: disabling in-app recalls and refuses sends; settings reach the next poll at once."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime

import asyncpg

import storage
from gateway.core.clock import FixedClock
from gateway.core.workspaces import WorkspaceCache
from tests.helpers import Api


async def test_the_workspace_reads_its_defaults(api: Api) -> None:
    read = await api.request("GET", "/v1/workspace")
    assert read.status == 200, read
    assert read.body == {
        "name": "acme", "site_id": api.site_id, "in_app_enabled": True, "identity_mode": "off",
        "intervals": {"active_s": 10, "inactive_s": 60, "low_s": 180, "recent_days": 30},
        "lease_s": 300, "retention_days": 30, "device_attributes": [],
        "identity_hash_allowed": True, "max_token_lifetime_s": 86400,
        "rate_limits": {
            "site": {"rate_per_s": 1000, "burst": 5000}, "person": {"rate_per_s": 10, "burst": 300},
            "events": {"rate_per_s": 10, "burst": 500}, "api_key": {"rate_per_s": 500, "burst": 2000},
        },
        "api_keys": [{"id": read.body["api_keys"][0]["id"], "created_at": read.body["api_keys"][0]["created_at"],
                      "expires_at": None}],
        "identity_secrets": [{"kid": api.workspace.identity_secrets[0].kid,
                              "created_at": read.body["identity_secrets"][0]["created_at"], "expires_at": None}],
    }
    assert api.workspace.identity_secret not in str(read.body), "never a stored secret"


async def test_disabling_recalls_every_queued_and_offered_message(api: Api, clock: FixedClock) -> None:
    queued = [(await api.send(user)).body["id"] for user in ("ada", "ada", "bob")]
    offered = (await api.send("cy")).body["id"]
    assert (await api.poll("cy", "phone")).message_ids == [offered]
    shown = (await api.send("dee")).body["id"]
    await api.poll("dee", "phone")
    await api.show("dee", "phone", shown)
    clock.advance(seconds=10)

    disabled = await api.patch_workspace(in_app_enabled=False)
    assert disabled.status == 200, disabled
    assert disabled.body["in_app_enabled"] is False
    assert disabled.body["recalled"] == 4

    for message_id in [*queued, offered]:
        read = await api.message(message_id)
        assert read.body["state"] == "recalled", read
        assert read.body["events"][-1]["type"] == "recalled"
        assert datetime.fromisoformat(read.body["events"][-1]["at"]) == clock.now()
    assert (await api.message(shown)).body["state"] == "shown"

    for user in ("ada", "bob", "cy"):
        assert (await api.poll(user, "phone")).message_ids == [], user
    assert (await api.show("cy", "phone", offered)).body["accepted"] == 0

    again = await api.patch_workspace(in_app_enabled=False)
    assert again.body["recalled"] == 0


async def test_a_disabled_workspace_refuses_sends_until_enabled(api: Api) -> None:
    await api.patch_workspace(in_app_enabled=False)
    for attempt in (api.send("ada"), api.send({"email": "ada@example.com"}),
                    api.send("ada", headers={"Idempotency-Key": "k"})):
        refused = await attempt
        assert (refused.status, refused.error_code) == (409, "in_app_disabled"), refused
    assert (await api.request("GET", "/v1/workspace")).body["in_app_enabled"] is False

    enabled = await api.patch_workspace(in_app_enabled=True)
    assert enabled.body["in_app_enabled"] is True
    assert enabled.body["recalled"] == 0

    sent = await api.send("ada", headers={"Idempotency-Key": "k"})
    assert sent.status == 201, sent
    assert (await api.poll("ada", "phone")).message_ids == [sent.body["id"]]


async def test_messages_recalled_by_disabling_stay_recalled_after_enabling(api: Api) -> None:
    before = (await api.send("ada", "Before")).body["id"]
    await api.patch_workspace(in_app_enabled=False)
    await api.patch_workspace(in_app_enabled=True)
    after = (await api.send("ada", "After")).body["id"]

    assert (await api.poll("ada", "phone")).message_ids == [after]
    assert (await api.message(before)).body["state"] == "recalled"


async def test_a_settings_change_reaches_the_next_poll_at_once(api: Api, clock: FixedClock) -> None:
    # Warm this process's cache first, so the test fails if the PATCH left a stale copy behind.
    assert (await api.poll("ada", "phone")).status == 200
    assert (await api.request("GET", "/v1/workspace")).status == 200

    await api.patch_workspace(identity_mode="required", lease_s=60, intervals={"low_s": 900})
    refused = await api.poll("ada", "phone")
    assert (refused.status, refused.error_code) == (403, "identity_proof_required")
    proven = await api.poll("ada", "phone", user_hash=api.hash_for("ada"))
    assert proven.body["tier"] == "low"
    assert 810 <= proven.body["next_poll_s"] <= 990
    assert (await api.request("GET", "/v1/workspace")).body["identity_mode"] == "required"

    sent = await api.send("ada")
    await api.poll("ada", "phone", user_hash=api.hash_for("ada"))
    clock.advance(seconds=61)
    taken = await api.poll("ada", "laptop", user_hash=api.hash_for("ada"))
    assert taken.message_ids == [sent.body["id"]]

    await api.patch_workspace(identity_mode="off")
    assert (await api.poll("ada", "phone")).status == 200


async def test_the_cache_serves_a_put_workspace_at_once_and_others_after_ttl(
    api: Api, pool: asyncpg.Pool
) -> None:
    ticks = [0.0]
    cache = WorkspaceCache(pool, ttl_s=5, monotonic=lambda: ticks[0])
    cached = await cache.by_site_id(api.site_id)
    assert cached is not None and cached.identity_mode == "off"
    assert (await cache.by_api_key(api.api_key)) == cached

    # A change made elsewhere (another process) is seen once the entry's time is up...
    elsewhere, _ = await storage.update_workspace(pool, cached.id, identity_mode="optional")
    assert (await cache.by_site_id(api.site_id)) == cached
    ticks[0] += 5.1
    assert (await cache.by_site_id(api.site_id)) == elsewhere

    # ...while one made through this process replaces every copy at once.
    here, _ = await storage.update_workspace(pool, cached.id, identity_mode="required", lease_s=42)
    cache.put(here)
    assert (await cache.by_site_id(api.site_id)) == here
    assert (await cache.by_api_key(api.api_key)) == here
    assert here == dataclasses.replace(cached, identity_mode="required", lease_s=42)


async def test_the_cache_shares_one_load_among_concurrent_misses(api: Api, pool: asyncpg.Pool) -> None:
    cache = WorkspaceCache(pool, ttl_s=5)
    loaded = await asyncio.gather(*(cache.by_site_id(api.site_id) for _ in range(10)))
    assert all(w is loaded[0] for w in loaded)
    assert loaded[0] is not None and loaded[0].site_id == api.site_id
    assert (await cache.by_site_id("site_unknown")) is None
