"""The poll path: one claim statement, the interval policy on the facts it returned, and,
for a held poll, parking until a notification (or the deadline) says to claim again."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

import storage
from storage import DeliveredMessage, Workspace

from .clock import Clock
from .intervals import Intervals, NextPoll, next_poll
from .metrics import Metrics
from .quiet import QuietPeople
from .waiters import Waiters, Wake

__all__ = ["SHUTDOWN_POLL_S", "PollAnswer", "Poller"]

# When a process stops, its held polls are told to come back soon, spread over this range.
SHUTDOWN_POLL_S = (1, 5)


@dataclass(frozen=True, slots=True)
class PollAnswer:
    messages: tuple[DeliveredMessage, ...]
    next_poll: NextPoll
    outcome: str

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
        quiet: QuietPeople,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._rng = rng
        self._claim_limit = claim_limit
        self._waiters = waiters
        self._metrics = metrics
        self._quiet = quiet

    async def poll(self, workspace: Workspace, user: str, device_id: str, *, wait_s: float = 0) -> PollAnswer:
        answer = await self._poll(workspace, user, device_id, wait_s)
        self._metrics.polls.labels(answer.outcome).inc()
        return answer

    async def _poll(self, workspace: Workspace, user: str, device_id: str, wait_s: float) -> PollAnswer:
        if wait_s <= 0:
            return await self.claim(workspace, user, device_id)
        deadline = asyncio.get_running_loop().time() + wait_s
        woken = False
        while True:
            # Park before claiming: a message committed after the claim's snapshot wakes this
            # waiter, so nothing slips between the claim and the wait.
            waiter = self._waiters.park(workspace.id, user, deadline)
            if waiter is None:
                answer = await self.claim(workspace, user, device_id)
                outcome = answer.outcome if answer.has_offer or woken else "not_held"
                return PollAnswer(answer.messages, answer.next_poll, outcome)
            self._metrics.parked_polls.inc()
            try:
                answer = await self.claim(workspace, user, device_id, parked=True)
                if answer.has_offer:
                    return answer
                reason = await waiter.future
            finally:
                self._waiters.unpark(waiter)
                self._metrics.parked_polls.dec()
            self._metrics.wakeups.labels(reason.value).inc()
            if reason is Wake.TIMEOUT:
                return PollAnswer(answer.messages, answer.next_poll, "timeout")
            if reason is Wake.SHUTDOWN:
                seconds = self._rng.randint(*SHUTDOWN_POLL_S)
                return PollAnswer(answer.messages, NextPoll(answer.next_poll.tier, seconds), "shutdown")
            woken = True

    async def claim(self, workspace: Workspace, user: str, device_id: str, *, parked: bool = False) -> PollAnswer:
        """Claim for this device and compute its next interval, in one database round trip.

        A parked poll skips the database when this person is known to have nothing pending
        (gateway/quiet.py): it is already registered for the notification that any new
        message sends, so even a stale answer only delays it by that notification's flight.
        A short poll always claims: no message committed before it may be missed."""
        quiet = self._quiet.get(workspace.id, user) if parked else None
        if quiet is not None:
            now = self._clock.now() or datetime.now(UTC)
            interval = next_poll(
                has_message=False, last_message_at=quiet.last_message_at, now=now,
                intervals=intervals_of(workspace), rng=self._rng,
            )
            return PollAnswer((), interval, "quiet")
        mark = self._quiet.mark()
        claim = await storage.claim_messages(
            self._pool,
            workspace.id,
            user,
            device_id,
            lease_s=workspace.lease_s,
            limit=self._claim_limit,
            now=self._clock.now(),
        )
        offered = sum(1 for m in claim.messages if m.offered)
        if offered:
            self._metrics.claimed.inc(offered)
        elif not claim.messages and not claim.pending and not claim.showing:
            self._quiet.remember(workspace.id, user, claim.last_message_at, mark)
        interval = next_poll(
            has_message=offered > 0,
            last_message_at=claim.last_message_at,
            now=claim.now,
            intervals=intervals_of(workspace),
            rng=self._rng,
        )
        return PollAnswer(claim.messages, interval, "messages" if claim.messages else "empty")


def intervals_of(workspace: Workspace) -> Intervals:
    return Intervals(
        active_s=workspace.active_s,
        inactive_s=workspace.inactive_s,
        low_s=workspace.low_s,
        recent_days=workspace.recent_days,
    )
