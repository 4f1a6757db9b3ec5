"""Scenario 7: 100,000 held polls on one machine, each the gateway's longest `wait`.

The same run as scenario 3 (gateway/bench/scenarios/held_polls.py) at twice its size, with a
light send rate whose send-to-receive p99 shows that a full gateway still answers at once. A
process may open about 20,000 files, so the gateway runs enough workers to keep each well below
that even when the shared listening socket spreads connections unevenly, and the load generators
are several processes, each from its own loopback address in two ranges (127.0.0.x, 127.0.1.x),
so ephemeral ports never run short. Reported: polls held (target: every one, with no error),
memory per held poll, and the p99.
"""

from __future__ import annotations

import math

from .base import Context
from .held_polls import HeldPolls

__all__ = ["PER_WORKER", "ManyHeldPolls"]

# Held polls per gateway worker: well under the open-file cap, for an uneven spread.
PER_WORKER = 10_000


class ManyHeldPolls(HeldPolls):
    key = "s7"
    title = "100,000 held polls"
    budget_s = 900.0
    hold_timeout_s = 120.0

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        s = self.settings
        self.polls, self.rate, self.send_seconds = s.s7_polls, s.s7_rate, s.s7_seconds
        self.wait_s, self.ramp = s.s7_wait_s, s.s7_ramp
        self.workers = s.s7_workers or max(s.workers, math.ceil(self.polls / PER_WORKER))

    def gateway_flags(self) -> tuple[str, ...]:
        # Parking is capped per process; the cap must not be what this scenario measures.
        return (*super().gateway_flags(), "--max-parked", str(self.polls))
