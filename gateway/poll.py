"""The poll path: one claim statement, then the interval policy on the facts it returned."""

from __future__ import annotations

import random
from dataclasses import dataclass

import asyncpg

import storage
from storage import DeliveredMessage, Workspace

from .clock import Clock
from .intervals import Intervals, NextPoll, next_poll

__all__ = ["PollAnswer", "Poller"]


@dataclass(frozen=True, slots=True)
class PollAnswer:
    messages: tuple[DeliveredMessage, ...]
    next_poll: NextPoll


class Poller:
    """Answers polls; one instance per process, shared by every request."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, rng: random.Random, claim_limit: int) -> None:
        self._pool = pool
        self._clock = clock
        self._rng = rng
        self._claim_limit = claim_limit

    async def poll(self, workspace: Workspace, user: str, device_id: str, *, wait_s: float = 0) -> PollAnswer:
        """Claim for this device and compute its next interval, in one database round trip."""
        claim = await storage.claim_messages(
            self._pool,
            workspace.id,
            user,
            device_id,
            lease_s=workspace.lease_s,
            limit=self._claim_limit,
            now=self._clock.now(),
        )
        interval = next_poll(
            has_message=any(m.offered for m in claim.messages),
            last_message_at=claim.last_message_at,
            now=claim.now,
            intervals=intervals_of(workspace),
            rng=self._rng,
        )
        return PollAnswer(claim.messages, interval)


def intervals_of(workspace: Workspace) -> Intervals:
    return Intervals(
        active_s=workspace.active_s,
        inactive_s=workspace.inactive_s,
        low_s=workspace.low_s,
        recent_days=workspace.recent_days,
    )
