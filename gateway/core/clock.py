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
        """Seconds for in-process timers (rate-limit buckets): this process's own monotonic clock."""
        return time.monotonic()


class FixedClock(Clock):
    """A clock tests set and move, so no test sleeps through a lease or a 30-day window."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._moved_s = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        """Real seconds plus every move: a bucket refills as time passes and at once when a test moves on."""
        return time.monotonic() + self._moved_s

    def advance(self, **delta: float) -> datetime:
        step = timedelta(**delta)
        self._now += step
        self._moved_s += step.total_seconds()
        return self._now
