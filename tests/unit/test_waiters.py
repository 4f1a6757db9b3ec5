"""The registry of parked polls: O(1) bookkeeping, wake by key, caps, shutdown and expiry.

Futures need a running loop, so these tests are async; none of them waits on real time except
the one that runs the expiry ticker, which awaits the waiter's future with a timeout.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from gateway.core.waiters import Waiter, Waiters, Wake

WS = 1
OTHER_WS = 2
LATER = 1_000_000.0  # a deadline (loop time) no test reaches


def registry(*, max_total: int = 100, max_per_person: int = 10, tick_s: float = 0.25) -> Waiters:
    return Waiters(max_total=max_total, max_per_person=max_per_person, tick_s=tick_s)


def park(waiters: Waiters, user: str, *, workspace: int = WS, deadline: float = LATER) -> Waiter:
    waiter = waiters.park(workspace, user, deadline)
    assert waiter is not None, f"{user} was refused"
    return waiter


def assert_empty(waiters: Waiters) -> None:
    """Nothing left behind: no count, no key groups, no deadline buckets."""
    assert len(waiters) == 0
    assert waiters._by_key == {}
    assert waiters._buckets == {}


def woken(*waiters: Waiter) -> list[Wake | None]:
    return [w.future.result() if w.future.done() else None for w in waiters]


async def test_park_and_unpark_leave_nothing_behind() -> None:
    waiters = registry()
    parked = [park(waiters, user, deadline=deadline)
              for user in ("user-1", "user-2", "Ann@Example.com") for deadline in (10.0, 10.1, 20.0)]
    assert len(waiters) == 9
    assert not any(w.future.done() for w in parked)

    for waiter in parked:
        waiters.unpark(waiter)

    assert_empty(waiters)


async def test_unpark_after_a_wake_an_expiry_or_close_leaves_nothing_behind() -> None:
    waiters = registry()
    by_message = park(waiters, "user-1")
    by_timeout = park(waiters, "user-2", deadline=5.0)
    by_shutdown = park(waiters, "user-3")

    assert waiters.wake(WS, ["user-1"]) == 1
    assert waiters.expire(10.0) == 1
    waiters.close()
    assert woken(by_message, by_timeout, by_shutdown) == [Wake.MESSAGE, Wake.TIMEOUT, Wake.SHUTDOWN]

    for waiter in (by_message, by_timeout, by_shutdown):
        waiters.unpark(waiter)
    assert_empty(waiters)


async def test_wake_wakes_only_that_persons_polls_in_that_workspace() -> None:
    waiters = registry()
    phone = park(waiters, "user-1")
    laptop = park(waiters, "user-1")
    someone_else = park(waiters, "user-2")
    same_id_elsewhere = park(waiters, "user-1", workspace=OTHER_WS)

    assert waiters.wake(WS, ["user-1"]) == 2

    assert woken(phone, laptop, someone_else, same_id_elsewhere) == [Wake.MESSAGE, Wake.MESSAGE, None, None]
    # Woken but not yet unparked: a second notice does not count them again.
    assert waiters.wake(WS, ["user-1"]) == 0
    assert waiters.wake(WS, ["nobody"]) == 0


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_polls_of_one_person_leave_in_any_order_and_the_one_left_still_wakes(order: tuple[int, ...]) -> None:
    waiters = registry()
    # Two spellings of one email share the lower-case key: one person, three polls.
    polls = [park(waiters, user) for user in ("ann@example.com", "Ann@Example.com", "ann@example.com")]
    staying = polls[order[2]]

    waiters.unpark(polls[order[0]])
    waiters.unpark(polls[order[1]])

    assert waiters.wake(WS, ["ann@example.com"]) == 1
    assert woken(staying) == [Wake.MESSAGE]
    waiters.unpark(staying)
    assert_empty(waiters)


async def test_a_poll_named_by_both_keys_of_a_notice_wakes_once() -> None:
    waiters = registry()
    waiter = park(waiters, "Ann@Example.com")

    # A notice names a person by external id and by email; both match this waiter.
    assert waiters.wake(WS, ["Ann@Example.com", "ann@example.com"]) == 1
    assert woken(waiter) == [Wake.MESSAGE]


@pytest.mark.parametrize("key", ["ann@example.com", "Ann@Example.com"])
async def test_an_email_shaped_user_is_woken_by_its_lower_case_form_too(key: str) -> None:
    waiters = registry()
    waiter = park(waiters, "Ann@Example.com")

    assert waiters.wake(WS, [key]) == 1
    assert woken(waiter) == [Wake.MESSAGE]

    waiters.unpark(waiter)
    assert_empty(waiters)


async def test_a_lower_case_user_is_parked_under_one_key() -> None:
    waiters = registry()
    waiter = park(waiters, "ann@example.com")

    assert waiter.keys == ((WS, "ann@example.com"),)
    assert waiters.wake(WS, ["ANN@EXAMPLE.COM"]) == 0
    assert waiters.wake(WS, ["ann@example.com"]) == 1


async def test_per_person_cap() -> None:
    waiters = registry(max_per_person=2)
    first = park(waiters, "user-1")
    park(waiters, "user-1")

    assert waiters.park(WS, "user-1", LATER) is None
    assert len(waiters) == 2
    # Other people, and the same id in another workspace, are not affected.
    park(waiters, "user-2")
    park(waiters, "user-1", workspace=OTHER_WS)

    waiters.unpark(first)
    park(waiters, "user-1")
    assert waiters.park(WS, "user-1", LATER) is None


async def test_per_process_cap() -> None:
    waiters = registry(max_total=2)
    first = park(waiters, "user-1")
    park(waiters, "user-2")

    assert waiters.park(WS, "user-3", LATER) is None
    assert waiters.park(WS, "user-1", LATER) is None
    assert len(waiters) == 2

    waiters.unpark(first)
    park(waiters, "user-3")
    assert waiters.park(WS, "user-4", LATER) is None


async def test_refused_parks_leave_nothing_behind() -> None:
    waiters = registry(max_total=1)
    only = park(waiters, "user-1")
    assert waiters.park(WS, "user-2", 5.0) is None

    waiters.unpark(only)
    assert_empty(waiters)


async def test_close_answers_every_parked_poll_with_shutdown_and_refuses_new_ones() -> None:
    waiters = registry()
    parked = [park(waiters, f"user-{i}") for i in range(5)] + [park(waiters, "user-0")]

    assert not waiters.closed
    assert waiters.close() == 6

    assert waiters.closed
    assert woken(*parked) == [Wake.SHUTDOWN] * 6
    assert waiters.park(WS, "user-9", LATER) is None
    # Already answered: a late notice or a second close changes nothing.
    assert waiters.wake(WS, ["user-0"]) == 0
    assert waiters.close() == 0


async def test_wake_all_answers_everyone_with_the_reason() -> None:
    waiters = registry()
    parked = [park(waiters, "user-1"), park(waiters, "user-2", workspace=OTHER_WS)]

    assert waiters.wake_all(Wake.RECONNECT) == 2

    assert woken(*parked) == [Wake.RECONNECT, Wake.RECONNECT]
    assert not waiters.closed
    assert waiters.park(WS, "user-3", LATER) is not None


async def test_expire_times_out_by_deadline_bucket() -> None:
    waiters = registry(tick_s=0.25)
    early = park(waiters, "user-1", deadline=1.0)
    late = park(waiters, "user-2", deadline=1.1)  # in the bucket ending at 1.25
    latest = park(waiters, "user-3", deadline=2.0)

    assert waiters.expire(0.99) == 0
    assert waiters.expire(1.0) == 1
    assert woken(early, late, latest) == [Wake.TIMEOUT, None, None]

    assert waiters.expire(1.2) == 0  # past the deadline, but its bucket has not ended
    assert waiters.expire(1.25) == 1
    assert woken(late, latest) == [Wake.TIMEOUT, None]

    assert waiters.expire(1.9) == 0
    assert waiters.expire(5.0) == 1
    assert woken(latest) == [Wake.TIMEOUT]
    assert waiters._buckets == {}


@pytest.mark.parametrize("tick_s", [0.25, 0.1, 1.0])
async def test_expire_never_times_out_before_the_deadline_nor_a_tick_after(tick_s: float) -> None:
    waiters = registry(max_total=1000, tick_s=tick_s)
    deadlines = [i * 0.037 for i in range(1, 200)]
    parked = [park(waiters, f"user-{i}", deadline=d) for i, d in enumerate(deadlines)]

    for deadline, waiter in zip(deadlines, parked, strict=True):
        waiters.expire(deadline - 1e-6)
        assert not waiter.future.done(), f"timed out before its deadline {deadline}"
    for deadline, waiter in zip(deadlines, parked, strict=True):
        waiters.expire(deadline + tick_s)
        assert woken(waiter) == [Wake.TIMEOUT], f"not timed out a tick after its deadline {deadline}"


async def test_a_woken_poll_is_not_timed_out_again() -> None:
    waiters = registry()
    waiter = park(waiters, "user-1", deadline=1.0)
    waiters.wake(WS, ["user-1"])

    assert waiters.expire(2.0) == 0
    assert woken(waiter) == [Wake.MESSAGE]


async def test_the_expiry_ticker_times_out_held_polls() -> None:
    waiters = registry(tick_s=0.01)
    loop = asyncio.get_running_loop()
    soon = park(waiters, "user-1", deadline=loop.time() + 0.05)
    never = park(waiters, "user-2")
    ticker = asyncio.create_task(waiters.run_expiry())
    try:
        assert await asyncio.wait_for(soon.future, 5) is Wake.TIMEOUT
        assert not never.future.done()
    finally:
        ticker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ticker


async def test_the_per_person_cap_counts_every_spelling_of_an_email() -> None:
    waiters = Waiters(max_total=100, max_per_person=2)
    deadline = asyncio.get_running_loop().time() + 30
    assert waiters.park(1, "Ada@Example.com", deadline) is not None
    assert waiters.park(1, "ADA@example.COM", deadline) is not None
    assert waiters.park(1, "ada@EXAMPLE.com", deadline) is None
