"""Time as an input: production lets PostgreSQL's clock decide; tests pin and move the instant."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

__all__ = ["Clock", "FixedClock"]


class Clock:
    """The database clock: `now()` is None, so SQL uses `now()` and one clock rules every process."""

    def now(self) -> datetime | None:
        return None

    def monotonic(self) -> float:
        """Seconds on this process's monotonic clock: rate-limit buckets, how long a claim took to answer."""
        return time.monotonic()


class FixedClock(Clock):
    """A clock tests set and move, so no test sleeps through a lease or a 30-day window.

    Its monotonic clock moves only with `advance` too, so a test can stall a poll "for" minutes and
    rate-limit buckets refill only when a test moves on.
    """

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._monotonic = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, **delta: float) -> datetime:
        step = timedelta(**delta)
        self._now += step
        self._monotonic += step.total_seconds()
        return self._now
