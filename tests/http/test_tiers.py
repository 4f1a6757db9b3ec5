"""Tiers through HTTP: each poll says when to poll next, from facts its one claim returned."""

from __future__ import annotations

from gateway.core.clock import FixedClock
from tests.helpers import Api, Reply


def assert_tier(polled: Reply, tier: str, base_s: int) -> None:
    """The tier, an interval within ±10 % of its base, and the header equal to the body."""
    assert polled.status == 200, polled
    assert polled.body["tier"] == tier, polled
    seconds = polled.body["next_poll_s"]
    assert isinstance(seconds, int)
    assert base_s * 0.9 <= seconds <= base_s * 1.1, (tier, seconds)
    assert polled.headers["X-Mailslot-Next-Poll"] == str(seconds)


async def received_and_shown(api: Api, user: str) -> None:
    sent = await api.send(user)
    await api.poll(user, "phone")
    assert (await api.show(user, "phone", sent.body["id"])).body["accepted"] == 1


async def test_active_while_a_message_waits_for_this_device(api: Api, clock: FixedClock) -> None:
    await api.send("ada")
    assert_tier(await api.poll("ada", "phone"), "active", 10)
    # Still held under the lease: still active.
    clock.advance(seconds=60)
    assert_tier(await api.poll("ada", "phone"), "active", 10)


async def test_another_device_of_the_person_is_not_active_while_the_message_is_leased(api: Api) -> None:
    await api.send("ada")
    await api.poll("ada", "phone")
    assert_tier(await api.poll("ada", "laptop"), "inactive", 60)


async def test_inactive_when_the_last_message_came_29_days_ago(api: Api, clock: FixedClock) -> None:
    await received_and_shown(api, "ada")
    assert_tier(await api.poll("ada", "phone"), "inactive", 60)
    clock.advance(days=29)
    assert_tier(await api.poll("ada", "phone"), "inactive", 60)
    assert_tier(await api.poll("ada", "laptop"), "inactive", 60)


async def test_the_30_day_window_includes_its_last_instant(api: Api, clock: FixedClock) -> None:
    await received_and_shown(api, "ada")
    clock.advance(days=30)
    assert_tier(await api.poll("ada", "phone"), "inactive", 60)
    clock.advance(seconds=1)
    assert_tier(await api.poll("ada", "phone"), "low", 180)


async def test_low_when_the_last_message_came_31_days_ago(api: Api, clock: FixedClock) -> None:
    await received_and_shown(api, "ada")
    clock.advance(days=31)
    assert_tier(await api.poll("ada", "phone"), "low", 180)


async def test_low_for_a_person_who_never_received_a_message(api: Api) -> None:
    assert_tier(await api.poll("stranger", "phone"), "low", 180)
    await api.identify("known", email="known@example.com", first_name="Kim")
    assert_tier(await api.poll("known", "phone"), "low", 180)
    assert_tier(await api.poll("known@example.com", "phone"), "low", 180)


async def test_a_new_message_makes_a_quiet_person_active_again(api: Api, clock: FixedClock) -> None:
    await received_and_shown(api, "ada")
    clock.advance(days=40)
    assert_tier(await api.poll("ada", "phone"), "low", 180)
    await api.send("ada")
    assert_tier(await api.poll("ada", "laptop"), "active", 10)


async def test_workspace_intervals_change_every_tier(api: Api, clock: FixedClock) -> None:
    patched = await api.patch_workspace(intervals={"active_s": 2, "inactive_s": 300, "low_s": 900, "recent_days": 7})
    assert patched.status == 200, patched
    assert patched.body["intervals"] == {"active_s": 2, "inactive_s": 300, "low_s": 900, "recent_days": 7}

    assert_tier(await api.poll("nobody", "phone"), "low", 900)
    sent = await api.send("ada")
    assert_tier(await api.poll("ada", "phone"), "active", 2)
    await api.show("ada", "phone", sent.body["id"])
    clock.advance(days=7)
    assert_tier(await api.poll("ada", "phone"), "inactive", 300)
    clock.advance(days=1)
    assert_tier(await api.poll("ada", "phone"), "low", 900)


async def test_a_partial_intervals_patch_keeps_the_other_fields(api: Api) -> None:
    patched = await api.patch_workspace(intervals={"low_s": 600})
    assert patched.body["intervals"] == {"active_s": 10, "inactive_s": 60, "low_s": 600, "recent_days": 30}
    assert_tier(await api.poll("nobody", "phone"), "low", 600)
    await api.send("ada")
    assert_tier(await api.poll("ada", "phone"), "active", 10)


async def test_the_interval_is_jittered(api: Api) -> None:
    await api.patch_workspace(intervals={"low_s": 1000})
    seen = set()
    for _ in range(20):
        polled = await api.poll("nobody", "phone")
        assert_tier(polled, "low", 1000)
        seen.add(polled.body["next_poll_s"])
    assert len(seen) > 1, seen


async def test_a_workspace_lease_override(api: Api, clock: FixedClock) -> None:
    patched = await api.patch_workspace(lease_s=30)
    assert patched.body["lease_s"] == 30
    sent = await api.send("ada")
    await api.poll("ada", "phone")

    clock.advance(seconds=29)
    assert (await api.poll("ada", "laptop")).message_ids == []
    assert (await api.poll("ada", "phone")).message_ids == [sent.body["id"]]
    clock.advance(seconds=2)
    assert (await api.poll("ada", "laptop")).message_ids == [sent.body["id"]]
    assert (await api.poll("ada", "phone")).message_ids == []
