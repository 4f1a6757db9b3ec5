"""The poll path: one claim statement, the interval policy on the facts it returned, and,
for a held poll, parking until a notification (or the deadline) says to claim again. A person
known to have nothing pending is answered from memory instead (gateway/core/memory.py;
docs/decisions/0021-answer-from-memory.md).

A lease runs on the database clock from the claim statement's `now`, but a device can only act
on it from when the answer reaches it. The gateway times the claim on its monotonic clock and
tells the device each offer's lease left (`leases`) with that time taken off, so a statement
answered late (a paused database) shortens what the device is told; an offer with less than
`MIN_OFFER_LEASE_S` left is not handed out at all (docs/decisions/0016-fail-fast-leases-retention.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

import storage
from storage import Claim, DeliveredMessage, Workspace

from .barrier import Barrier
from .clock import Clock
from .intervals import Intervals, NextPoll, next_poll
from .memory import Memory
from .metrics import Metrics
from .waiters import Waiters, Wake

__all__ = ["HELD_SPREAD", "MIN_OFFER_LEASE_S", "SHUTDOWN_POLL_S", "Poll", "PollAnswer", "Poller"]

log = logging.getLogger("mailslot.gateway.poll")

# When a process stops, its held polls are told to come back soon, spread over this range.
SHUTDOWN_POLL_S = (1, 5)

# A held poll with no message is answered at a random moment in the last tenth of its `wait`
# (`HELD_SPREAD` of it), not at its end: devices that connected together (a deploy, a restart, a
# network coming back) would otherwise come back together every `wait`, for as long as they stay,
# and each wave stalls sends and claims behind it (bench/RESULTS.md, issue 12's sixth round).
HELD_SPREAD = 0.1

# An offer with less lease than this left when its answer is written is left out of the answer:
# by the time a device could show it, another device may have claimed it.
MIN_OFFER_LEASE_S = 1.0


@dataclass(frozen=True, slots=True)
class Poll:
    """Who polls: a person by id or email (`user`), or an anonymous visitor (`anonymous_id`)."""

    user: str | None
    device_id: str
    anonymous_id: str | None = None

    @property
    def key(self) -> str:
        """What held polls and the quiet cache know this poller by. A visitor's key starts with
        NUL, which no `user` can hold, so it never shares an entry with a person's id."""
        if self.user is not None:
            return self.user
        assert self.anonymous_id is not None
        return "\x00" + self.anonymous_id


@dataclass(frozen=True, slots=True)
class PollAnswer:
    messages: tuple[DeliveredMessage, ...]
    next_poll: NextPoll
    outcome: str
    # Whole seconds of lease each offered message has left, counted from when the answer is written.
    leases: Mapping[uuid.UUID, int] = field(default_factory=dict)

    @property
    def has_offer(self) -> bool:
        return any(m.offered for m in self.messages)


class Poller:
    """Answers polls; one instance per process, shared by every request."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        rng: random.Random,
        *,
        claim_limit: int,
        waiters: Waiters,
        metrics: Metrics,
        memory: Memory,
        barrier: Barrier | None = None,
        before_answer: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._rng = rng
        self._claim_limit = claim_limit
        self._waiters = waiters
        self._metrics = metrics
        self._memory = memory
        self._barrier = barrier
        # Bound once: a label lookup per poll is measurable on the path memory makes cheap.
        self._memory_results = {r: metrics.memory_result(r) for r in ("hit", "census", "miss", "stale", "off")}
        self._acks = {r: metrics.memory_ack(r) for r in ("acked", "unacked", "refused")}
        self._census_task: asyncio.Task[None] | None = None
        # A delay point between the claim and its answer, where a test holds a poll as a paused
        # database or a slow network would.
        self.before_answer = before_answer

    async def poll(
        self, workspace: Workspace, user: str | None, device_id: str, *, wait_s: float = 0,
        anonymous_id: str | None = None,
    ) -> PollAnswer:
        """A visitor polls with `anonymous_id` and `user` None (decision 0023).

        One coroutine frame from here to the wait: a parked poll keeps every frame above its
        future alive (docs/decisions/0029-held-poll-memory.md)."""
        who = Poll(user, device_id, anonymous_id)
        if wait_s <= 0:
            answer = await self.claim(workspace, who)
            self._metrics.poll_outcome(answer.outcome).inc()
            return answer
        deadline = asyncio.get_running_loop().time() + wait_s * (1 - HELD_SPREAD * self._rng.random())
        woken = False
        while True:
            # Park before claiming: a message committed after the claim's snapshot wakes this
            # waiter, so nothing slips between the claim and the wait.
            waiter = self._waiters.park(workspace.id, who.key, deadline)
            if waiter is None:
                answer = await self.claim(workspace, who)
                outcome = answer.outcome if answer.has_offer or woken else "not_held"
                answer = dataclasses.replace(answer, outcome=outcome)
                break
            self._metrics.parked_polls.inc()
            try:
                answer = await self.claim(workspace, who, parked=True)
                if answer.has_offer:
                    break
                reason = await waiter.future
            finally:
                self._waiters.unpark(waiter)
                self._metrics.parked_polls.dec()
            self._metrics.wakeups.labels(reason.value).inc()
            # Parked only without an offer, so these answers carry no lease that could have aged.
            if reason is Wake.TIMEOUT:
                answer = dataclasses.replace(answer, outcome="timeout")
                break
            if reason is Wake.SHUTDOWN:
                seconds = self._rng.randint(*SHUTDOWN_POLL_S)
                answer = dataclasses.replace(
                    answer, next_poll=NextPoll(answer.next_poll.tier, seconds), outcome="shutdown"
                )
                break
            woken = True
        self._metrics.poll_outcome(answer.outcome).inc()
        return answer

    async def claim(self, workspace: Workspace, who: Poll, *, parked: bool = False) -> PollAnswer:
        """Claim for this device and compute its next interval, in one database round trip, unless
        memory proves that this person has nothing a claim could return."""
        remembered = await self._from_memory(workspace, who.key, who.device_id, parked)
        if remembered is not None:
            return remembered
        memory = self._memory
        mark = memory.mark_and_rotations()
        started = self._clock.monotonic()
        claim = await storage.claim_messages(
            self._pool,
            workspace.id,
            who.user,
            who.device_id,
            lease_s=workspace.lease_s,
            limit=self._claim_limit,
            now=self._clock.now(),
            anonymous_id=who.anonymous_id,
        )
        if self.before_answer is not None:
            await self.before_answer()
        messages, leases = _within_lease(claim, self._clock.monotonic() - started)
        offered = sum(1 for m in claim.messages if m.offered)
        if offered:
            self._metrics.claimed.inc(offered)
        if offered and not claim.pending_elsewhere and not claim.showing and not claim.visiting and not any(
            m.persistent for m in claim.messages
        ):
            # Every offer, those `_within_lease` leaves out included: the device must end them all.
            ids = frozenset(m.id for m in claim.messages)
            memory.note_offers(workspace.id, who.key, who.device_id, ids, claim.last_message_at, mark)
        else:
            memory.drop_offers(workspace.id, who.key, who.device_id)
            if not claim.messages and not claim.pending and not claim.showing and not claim.visiting:
                memory.remember(workspace.id, who.key, who.device_id, claim.last_message_at, mark[0])
        interval = next_poll(
            has_message=offered > 0,
            last_message_at=claim.last_message_at,
            now=claim.now,
            intervals=intervals_of(workspace),
            rng=self._rng,
        )
        return PollAnswer(messages, interval, "messages" if messages else "empty", leases)

    def acknowledged(self, workspace: Workspace, who: Poll, ended: Collection[uuid.UUID]) -> None:
        """The device's accepted reports of this poll ended `ended` (shown or dismissed): if they
        end every offer of its last claim, and that claim saw nothing else pending, memory learns
        that the person is quiet without a claim (decision 0045). Synchronous: called before the
        poll's coroutine is built, so a held poll's frames stay as they are."""
        result = self._memory.acknowledge(workspace.id, who.key, who.device_id, ended)
        if result is not None:
            self._acks[result].inc()

    async def _from_memory(self, workspace: Workspace, user: str, device_id: str, parked: bool) -> PollAnswer | None:
        """The empty answer memory proves, or None: ask the database.

        A held poll trusts an entry at once: it is parked before it looks, so any notice heard
        later wakes it, and one already heard has dropped the entry. A short poll first waits for
        a commit-order barrier sent after it arrived, so that a message committed before then,
        whose notice may still be in flight, is never answered as nothing."""
        memory = self._memory
        if not memory.enabled:
            self._memory_results["off"].inc()
            return None
        if memory.get(workspace.id, user, device_id) is None:
            if memory.get(workspace.id, user) is None:  # no entry for any device: ask the census
                return await self._from_census(workspace, user, device_id, parked)
            self._memory_results["miss"].inc()
            return None
        if not parked and (self._barrier is None or not await self._barrier.wait()):
            self._memory_results["stale"].inc()
            return None
        entry = memory.get(workspace.id, user, device_id)
        if entry is None:
            self._memory_results["stale"].inc()
            return None
        self._memory_results["hit"].inc()
        return self._quiet_answer(workspace, entry.last_message_at, parked)

    async def _from_census(self, workspace: Workspace, user: str, device_id: str, parked: bool) -> PollAnswer | None:
        """The empty `low` answer the census proves for a person memory has no entry for, or None.

        The same barrier as for an entry; the answer is then remembered as an entry (with its
        device), as a claim that found nothing would be (decision 0028)."""
        memory = self._memory
        if memory.census_due():
            self._start_census()
        mark = memory.mark()
        if not memory.census_quiet(workspace.id, user):
            self._memory_results["miss"].inc()
            return None
        if not parked and (self._barrier is None or not await self._barrier.wait()):
            self._memory_results["stale"].inc()
            return None
        if not memory.census_quiet(workspace.id, user):
            self._memory_results["stale"].inc()
            return None
        self._memory_results["census"].inc()
        memory.remember(workspace.id, user, device_id, None, mark)
        return self._quiet_answer(workspace, None, parked)

    def _start_census(self) -> None:
        if self._census_task is None or self._census_task.done():
            self._census_task = asyncio.get_running_loop().create_task(self._load_census(), name="mailslot.census")

    async def _load_census(self) -> None:
        """Read the census (one statement pair); a failure leaves polls claiming, as without one."""
        mark = self._memory.mark_and_rotations()
        try:
            rows = await storage.list_unsettled_people(
                self._pool, now=self._clock.now(), limit=self._memory.max_entries,
            )
        except Exception as exc:  # polls claim meanwhile; a poll tries again after `ttl_s`
            log.warning("reading the census failed: %s", exc)
            self._memory.census_failed()
            return
        if not self._memory.install_census(rows, mark):
            # Not kept: a reconnect or rotation overtook it (polls read it again), or too many people.
            if not rows.complete:
                log.info("census not kept: more than %d unsettled people", self._memory.max_entries)
                self._memory.census_failed()

    def _quiet_answer(self, workspace: Workspace, last_message_at: datetime | None, parked: bool) -> PollAnswer:
        now = self._clock.now() or datetime.now(UTC)
        interval = next_poll(
            has_message=False, last_message_at=last_message_at, now=now,
            intervals=intervals_of(workspace), rng=self._rng,
        )
        return PollAnswer((), interval, "quiet" if parked else "empty")


def _within_lease(claim: Claim, elapsed_s: float) -> tuple[tuple[DeliveredMessage, ...], dict[uuid.UUID, int]]:
    """The messages worth handing out, and each offer's lease left once `elapsed_s` is taken off.

    `elapsed_s` runs from before the statement was sent, and the statement's `now` is no earlier
    than that, so the lease left is never overstated.
    """
    kept: list[DeliveredMessage] = []
    leases: dict[uuid.UUID, int] = {}
    for message in claim.messages:
        if message.offered and message.lease_expires_at is not None:
            left = (message.lease_expires_at - claim.now).total_seconds() - elapsed_s
            if left < MIN_OFFER_LEASE_S:
                continue
            leases[message.id] = int(left)
        kept.append(message)
    return tuple(kept), leases


def intervals_of(workspace: Workspace) -> Intervals:
    return Intervals(
        active_s=workspace.active_s,
        inactive_s=workspace.inactive_s,
        low_s=workspace.low_s,
        recent_days=workspace.recent_days,
    )
