"""Time as an input: production lets PostgreSQL's clock decide; tests pin and move the instant."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["Clock", "FixedClock"]


class Clock:
    """The database clock: `now()` is None, so SQL uses `now()` and one clock rules every process."""

    def now(self) -> datetime | None:
        return None


class FixedClock(Clock):
    """A clock tests set and move, so no test sleeps through a lease or a 30-day window."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now
