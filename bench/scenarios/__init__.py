"""The scenarios, numbered as bench/RESULTS.md names them; each has setup, run and teardown (see `base.Scenario`)."""

from __future__ import annotations

from .base import Context, Scenario, Skip
from .broadcast import BroadcastFanOut
from .claim_path import ClaimPath
from .held_polls import HeldPolls
from .many_held import ManyHeldPolls
from .peer import NchanPeer
from .retention import RetentionFlat
from .sends import SendThroughput
from .short_polls import ShortPolls

__all__ = ["SCENARIOS", "Context", "Scenario", "Skip"]

SCENARIOS: dict[int, type[Scenario]] = {
    1: ShortPolls,
    2: ClaimPath,
    3: HeldPolls,
    4: BroadcastFanOut,
    5: NchanPeer,
    6: RetentionFlat,
    7: ManyHeldPolls,
    8: SendThroughput,
}
