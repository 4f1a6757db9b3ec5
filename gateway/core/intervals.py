"""The interval policy: which tier a device is in and when it should poll next.

Pure: it takes the claim's facts, the instant the claim used and a random source, so tests
need neither a clock nor luck.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = ["JITTER", "Intervals", "NextPoll", "Tier", "next_poll"]

Tier = Literal["active", "inactive", "low"]

# ±10 %: clients that started together drift apart instead of polling in lockstep.
JITTER = 0.1


@dataclass(frozen=True, slots=True)
class Intervals:
    """A workspace's intervals in seconds; defaults are the hosted product's."""

    active_s: int = 10
    inactive_s: int = 60
    low_s: int = 180
    recent_days: int = 30


@dataclass(frozen=True, slots=True)
class NextPoll:
    tier: Tier
    seconds: int


def next_poll(
    *,
    has_message: bool,
    last_message_at: datetime | None,
    now: datetime,
    intervals: Intervals,
    rng: random.Random,
) -> NextPoll:
    """Active if a message waits for this device; inactive if the person got one within
    `recent_days` (inclusive); low otherwise. The interval gets ±10 % jitter, at least 1 s."""
    tier: Tier
    if has_message:
        tier, base = "active", intervals.active_s
    elif last_message_at is not None and now - last_message_at <= timedelta(days=intervals.recent_days):
        tier, base = "inactive", intervals.inactive_s
    else:
        tier, base = "low", intervals.low_s
    seconds = max(1, round(base * rng.uniform(1 - JITTER, 1 + JITTER)))
    return NextPoll(tier, seconds)
