"""Retention: final messages and their events go after the workspace's period; what the tiers,
the setup status and the broadcast counts need stays; nothing a device could still get goes."""

from __future__ import annotations

import asyncpg
import pytest

import storage
from gateway.core.clock import FixedClock
from storage.retention import RETENTION_LOCK_KEY
from tests.helpers import Api

LONG_TTL_S = 365 * 86400


async def final_and_live(api: Api, pool: asyncpg.Pool, clock: FixedClock) -> tuple[dict[str, str], dict[str, str]]:
    """One message in each final state and one in each state a device may still act on."""
    final: dict[str, str] = {}
    live: dict[str, str] = {}

    final["dismissed"] = (await api.send("ada", ttl_s=LONG_TTL_S)).body["id"]
    await api.poll("ada", "phone")
    await api.show("ada", "phone", final["dismissed"])
    await api.dismiss("ada", "phone", final["dismissed"])

    final["acted"] = (await api.send("bob", ttl_s=LONG_TTL_S)).body["id"]
    await api.poll("bob", "phone")
    await api.show("bob", "phone", final["acted"])
    await api.report("bob", "phone", {"message_id": final["acted"], "type": "action", "action": "go"})

    final["expired_unseen"] = (await api.send("cy", ttl_s=60)).body["id"]
    final["recalled"] = (await api.send("dee", ttl_s=LONG_TTL_S)).body["id"]
    assert (await api.recall(final["recalled"])).status == 200

    live["queued"] = (await api.send("eve", ttl_s=LONG_TTL_S)).body["id"]
    live["offered"] = (await api.send("fay", ttl_s=LONG_TTL_S)).body["id"]
    await api.poll("fay", "phone")
    live["shown_persistent"] = (await api.send(
        "gus", ttl_s=LONG_TTL_S, persistent=True, content={"title": "Banner", "layout": "banner_top"}
    )).body["id"]
    await api.poll("gus", "phone")
    await api.show("gus", "phone", live["shown_persistent"])

    clock.advance(seconds=120)
    await storage.expire_messages(pool, now=clock.now())
    return final, live


async def event_count(pool: asyncpg.Pool, message_ids: list[str]) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM events WHERE message_id = any($1::uuid[])", message_ids)
    return count


async def test_final_messages_and_their_events_go_after_the_retention_period(
    api: Api, pool: asyncpg.Pool, clock: FixedClock
) -> None:
    await api.patch_workspace(intervals={"recent_days": 90})  # so the tier still depends on them
    final, live = await final_and_live(api, pool, clock)
    setup_before = (await api.request("GET", "/v1/workspace/setup")).body
    assert setup_before["status"] == "complete"
    tiers_before = {u: (await api.poll(u, "tablet")).body["tier"] for u in ("ada", "bob", "cy", "dee")}
    assert tiers_before == dict.fromkeys(("ada", "bob", "cy", "dee"), "inactive")

    clock.advance(days=29)
    early = await storage.delete_retired_messages(pool, now=clock.now())
    assert early == storage.RetentionSweep(0)

    clock.advance(days=2)
    swept = await storage.delete_retired_messages(pool, now=clock.now())
    assert swept == storage.RetentionSweep(len(final))

    for message_id in final.values():
        assert (await api.message(message_id)).status == 404
    assert await event_count(pool, list(final.values())) == 0
    for state, message_id in live.items():
        read = await api.message(message_id)
        assert read.status == 200, (state, read)
    assert await event_count(pool, list(live.values())) > 0

    # What outlives the rows: the setup status, and each person's tier (last message 31 days ago).
    assert (await api.request("GET", "/v1/workspace/setup")).body == setup_before
    for user in ("ada", "bob", "cy", "dee"):
        assert (await api.poll(user, "tablet")).body["tier"] == "inactive", user

    # The live messages still work: the offered one returns to its device, the banner stays.
    assert (await api.poll("eve", "phone")).message_ids == [live["queued"]]
    assert (await api.poll("gus", "phone")).message_ids == [live["shown_persistent"]]
    assert await storage.delete_retired_messages(pool, now=clock.now()) == storage.RetentionSweep(0)


async def test_broadcast_counts_survive_the_deletion_of_its_entries(
    api: Api, pool: asyncpg.Pool, clock: FixedClock
) -> None:
    created = await api.request("POST", "/v1/broadcasts", json={
        "audience": {"ids": ["ada", "bob", "cy", "dee"]}, "content": {"title": "Spring"}, "ttl_s": 3600,
    })
    assert created.status == 201, created
    broadcast_id = created.body["id"]
    polled = {u: (await api.poll(u, "phone")).message_ids[0] for u in ("ada", "bob")}
    for user, message_id in polled.items():
        await api.show(user, "phone", message_id)
    await api.report("ada", "phone", {"message_id": polled["ada"], "type": "action", "action": "go"})
    await api.dismiss("ada", "phone", polled["ada"])
    clock.advance(seconds=3601)  # cy and dee never polled: expired; bob's shown one expired too
    await storage.expire_messages(pool, now=clock.now())
    before = (await api.request("GET", f"/v1/broadcasts/{broadcast_id}")).body
    assert before["counts"] == {"queued": 0, "offered": 0, "shown": 1, "action": 1, "dismissed": 1,
                                "expired": 2, "recalled": 0}

    clock.advance(days=31)
    assert (await storage.delete_retired_messages(pool, now=clock.now())).deleted == 4
    after = (await api.request("GET", f"/v1/broadcasts/{broadcast_id}")).body
    assert (after["total"], after["counts"], after["states"]) == (before["total"], before["counts"], before["states"])


async def test_each_workspace_keeps_its_own_retention(
    api: Api, other_api: Api, pool: asyncpg.Pool, clock: FixedClock
) -> None:
    patched = await api.patch_workspace(retention_days=90)
    assert patched.status == 200, patched
    assert patched.body["retention_days"] == 90
    assert (await api.request("GET", "/v1/workspace")).body["retention_days"] == 90
    kept = (await api.send("ada")).body["id"]
    gone = (await other_api.send("ada")).body["id"]
    assert (await api.recall(kept)).status == 200
    assert (await other_api.recall(gone)).status == 200

    clock.advance(days=31)
    assert (await storage.delete_retired_messages(pool, now=clock.now())).deleted == 1
    assert (await api.message(kept)).status == 200
    assert (await other_api.message(gone)).status == 404
    clock.advance(days=60)
    assert (await storage.delete_retired_messages(pool, now=clock.now())).deleted == 1
    assert (await api.message(kept)).status == 404


async def test_deletion_goes_in_small_batches(api: Api, pool: asyncpg.Pool, clock: FixedClock) -> None:
    ids = [(await api.send(f"user-{n}")).body["id"] for n in range(7)]
    for message_id in ids:
        await api.recall(message_id)
    clock.advance(days=31)
    assert await storage.delete_retired_messages(pool, batch=3, max_batches=2, now=clock.now()) == \
        storage.RetentionSweep(6)
    assert await storage.delete_retired_messages(pool, batch=3, now=clock.now()) == storage.RetentionSweep(1)


async def test_one_process_sweeps_at_a_time(api: Api, pool: asyncpg.Pool, database_url: str, clock: FixedClock) -> None:
    message_id = (await api.send("ada")).body["id"]
    await api.recall(message_id)
    clock.advance(days=31)
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", RETENTION_LOCK_KEY)
            busy = await storage.delete_retired_messages(pool, now=clock.now())
            assert busy == storage.RetentionSweep(0, busy=True)
            assert (await api.message(message_id)).status == 200
    finally:
        await other.close()
    assert await storage.delete_retired_messages(pool, now=clock.now()) == storage.RetentionSweep(1)


@pytest.mark.parametrize("value", [0, -1, 3651, 10**30, True, 1.5, "30", None])
async def test_retention_days_out_of_range_is_422(api: Api, value: object) -> None:
    reply = await api.patch_workspace(retention_days=value)
    if value is None:  # null leaves the setting as it is
        assert reply.status == 200, reply
        assert reply.body["retention_days"] == 30
        return
    assert reply.status == 422, reply
    assert reply.error_code == "invalid_fields"
    assert (await api.request("GET", "/v1/workspace")).body["retention_days"] == 30
