"""What a notification does to a process's caches and parked polls (gateway/core/wakeups.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway.core.barrier import Barrier
from gateway.core.memory import Memory
from gateway.core.metrics import Metrics
from gateway.core.waiters import Waiters, Wake
from gateway.core.wakeups import Wakeups
from gateway.core.workspaces import WorkspaceCache
from storage import BroadcastNotice, QueueNotice, Workspace, WorkspaceNotice

LAST = datetime(2026, 11, 1, tzinfo=UTC)
FAR = 10**9  # a deadline no test reaches


class Parts:
    def __init__(self) -> None:
        self.waiters = Waiters(max_total=100, max_per_person=10)
        self.quiet = Memory(30)
        self.sent: list[str] = []
        self.barrier = Barrier(self.send)
        self.workspaces = WorkspaceCache(pool=None, ttl_s=60)  # type: ignore[arg-type]
        self.metrics = Metrics()
        self.wakeups = Wakeups(self.waiters, self.quiet, self.workspaces, self.metrics, use_memory=True,
                               barrier=self.barrier, wall_clock=lambda: 1000.0)
        self.wakeups.on_connect()

    async def send(self, token: str) -> None:
        self.sent.append(token)

    def remember_quiet(self, workspace: int, user: str) -> None:
        assert self.quiet.remember(workspace, user, "web", LAST, self.quiet.mark())


def workspace(workspace_id: int) -> Workspace:
    return Workspace(id=workspace_id, name="w", site_id=f"site-{workspace_id}", identity_secret="s",
                     identity_mode="off", in_app_enabled=True, active_s=10, inactive_s=60, low_s=180,
                     recent_days=30, lease_s=300)


async def test_a_queue_notice_forgets_the_person_before_waking_their_polls() -> None:
    parts = Parts()
    parts.remember_quiet(1, "ada")
    parts.remember_quiet(1, "bob")
    ada = parts.waiters.park(1, "ada", FAR)
    bob = parts.waiters.park(1, "bob", FAR)
    assert ada is not None and bob is not None
    seen: list[object] = []
    # What a woken poll would see first: by then the cache must have forgotten "nothing pending".
    ada.future.add_done_callback(lambda _: seen.append(parts.quiet.get(1, "ada")))

    parts.wakeups.on_notice(QueueNotice(workspace=1, person=7, keys=("ada", "ada@example.com"), at=999.5))
    await asyncio.sleep(0)

    assert ada.future.result() is Wake.MESSAGE
    assert seen == [None]
    assert not bob.future.done()
    assert parts.quiet.get(1, "bob") is not None


async def test_a_broadcast_notice_wakes_and_forgets_the_whole_workspace_only() -> None:
    parts = Parts()
    parts.remember_quiet(1, "ada")
    parts.remember_quiet(2, "ada")
    here = parts.waiters.park(1, "ada", FAR)
    elsewhere = parts.waiters.park(2, "ada", FAR)
    assert here is not None and elsewhere is not None

    parts.wakeups.on_notice(BroadcastNotice(workspace=1, at=None))

    assert here.future.result() is Wake.MESSAGE
    assert not elsewhere.future.done()
    assert parts.quiet.get(1, "ada") is None
    assert parts.quiet.get(2, "ada") is not None


async def test_a_workspace_notice_drops_cached_settings_and_wakes_nobody() -> None:
    parts = Parts()
    parts.workspaces.put(workspace(1))
    parts.workspaces.put(workspace(2))
    parts.remember_quiet(1, "ada")
    waiter = parts.waiters.park(1, "ada", FAR)
    assert waiter is not None

    parts.wakeups.on_notice(WorkspaceNotice(workspace=1))

    assert not waiter.future.done()
    assert parts.quiet.get(1, "ada") is None
    assert await parts.workspaces.by_site_id("site-2") == workspace(2)  # still cached: no pool needed


async def test_a_reconnect_wakes_every_held_poll_and_trusts_nothing_cached() -> None:
    parts = Parts()
    parts.remember_quiet(1, "ada")
    polls = [parts.waiters.park(1, user, FAR) for user in ("ada", "bob")]

    parts.wakeups.on_connect()

    assert [p.future.result() for p in polls if p is not None] == [Wake.RECONNECT, Wake.RECONNECT]
    assert parts.quiet.get(1, "ada") is None
    assert parts.quiet.enabled


async def test_while_disconnected_nothing_is_remembered_as_quiet() -> None:
    parts = Parts()
    parts.wakeups.on_disconnect()
    assert not parts.quiet.remember(1, "ada", "web", LAST, parts.quiet.mark())
    assert parts.quiet.get(1, "ada") is None


async def test_the_notification_lag_is_measured_from_the_notice_time() -> None:
    parts = Parts()
    parts.wakeups.on_notice(QueueNotice(workspace=1, person=7, keys=("ada",), at=999.75))
    samples = parts.metrics.notification_lag.collect()[0].samples
    total = next(s.value for s in samples if s.name.endswith("_sum"))
    assert total == 0.25


async def test_a_barrier_round_ends_when_its_marker_is_heard_and_fails_on_a_reconnect() -> None:
    parts = Parts()
    first = asyncio.ensure_future(parts.barrier.wait())
    await wait_for_sent(parts, 1)
    parts.wakeups.on_barrier(parts.sent[0])
    assert await first is True

    second = asyncio.ensure_future(parts.barrier.wait())
    await wait_for_sent(parts, 2)
    parts.wakeups.on_connect()  # the marker may have been sent on the lost connection
    assert await second is False

    parts.wakeups.on_disconnect()
    assert await parts.barrier.wait() is False  # no listener: nothing can be proved
    assert len(parts.sent) == 2


async def test_a_barrier_round_serves_every_poll_that_arrived_before_its_marker_was_sent() -> None:
    parts = Parts()
    waits = [asyncio.ensure_future(parts.barrier.wait()) for _ in range(5)]
    await wait_for_sent(parts, 1)
    late = asyncio.ensure_future(parts.barrier.wait())  # arrived after the marker left: next round
    await wait_for_sent(parts, 2)
    parts.wakeups.on_barrier(parts.sent[0])
    assert await asyncio.gather(*waits) == [True] * 5
    assert not late.done()
    parts.wakeups.on_barrier(parts.sent[1])
    assert await late is True


async def test_a_cancelled_poll_leaves_its_round_to_the_others() -> None:
    parts = Parts()
    waits = [asyncio.ensure_future(parts.barrier.wait()) for _ in range(3)]
    await wait_for_sent(parts, 1)
    waits[0].cancel()
    parts.wakeups.on_barrier(parts.sent[0])
    assert await asyncio.gather(*waits[1:]) == [True, True]
    assert waits[0].cancelled()


async def test_a_heard_round_cancels_its_timeout() -> None:
    parts = Parts()
    first = asyncio.ensure_future(parts.barrier.wait())
    await wait_for_sent(parts, 1)
    (round_,) = parts.barrier._sent.values()
    parts.wakeups.on_barrier(parts.sent[0])
    assert await first is True
    assert round_.timer is not None and round_.timer.cancelled()


async def test_a_lost_marker_fails_its_round_when_a_later_one_is_heard() -> None:
    parts = Parts()
    first = asyncio.ensure_future(parts.barrier.wait())
    await wait_for_sent(parts, 1)
    second = asyncio.ensure_future(parts.barrier.wait())
    await wait_for_sent(parts, 2)
    parts.wakeups.on_barrier(parts.sent[1])
    assert await first is False
    assert await second is True


async def wait_for_sent(parts: Parts, n: int) -> None:
    for _ in range(100):
        if len(parts.sent) >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{n} markers never sent: {parts.sent}")
