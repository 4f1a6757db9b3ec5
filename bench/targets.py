"""The issue's targets, checked against a result: figures to design toward, reported as hit or miss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TARGETS", "Target", "evaluate"]


@dataclass(frozen=True, slots=True)
class Target:
    scenario: str
    figure: str
    bound: float
    at_least: bool  # True: the value must be >= bound; False: <= bound
    unit: str
    value: Callable[[dict[str, Any]], float | None]


def _get(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def read(result: dict[str, Any]) -> float | None:
        value: Any = result
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, int | float) else None

    return read


def _held_share(result: dict[str, Any]) -> float | None:
    """Held polls over those asked, counted as none held when a load generator saw an error."""
    held, asked = _get("held")(result), _get("target_held")(result)
    if held is None or not asked:
        return None
    return 0.0 if sum((result.get("errors") or {}).values()) else held / asked


TARGETS = (
    Target("s1", "empty polls/s, ratio to the ceiling", 0.6, True, "x", _get("ratio")),
    Target("s2", "deliveries/s, ratio to the ceiling", 0.7, True, "x", _get("ratio")),
    Target("s3", "gateway RSS per held poll", 12 * 1024, False, "B", _get("rss_per_held_poll_bytes")),
    Target("s3", "send-to-receive p99 at 1,000 msg/s", 50.0, False, "ms", _get("send_to_receive", "p99_ms")),
    # A broadcast answered with an error queued no one in time: a miss, whatever its upper bound.
    Target("s4", "people/s until queued", 100_000, True, "/s",
           lambda r: 0.0 if r.get("broadcast_failure") else _get("people_per_s")(r)),
    # One round's messages stay until the next round's sweep; more than two means deletion fell behind.
    Target("s6", "messages rows after the last round, in rounds' worth", 2.0, False, "rounds",
           _get("messages_rows_in_rounds")),
    # Held with no error: every poll asked for parked, and the load generators saw no error.
    Target("s7", "polls held, share of those asked", 1.0, True, "x", _held_share),
    # The "s6 (new)": single sends/s over the same statement through asyncpg alone.
    Target("s8", "single sends/s, ratio to the ceiling", 0.7, True, "x", _get("ratio")),
)


def evaluate(scenarios: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per target whose scenario ran: hit or miss, and by how much (percent of the bound)."""
    verdicts = []
    for target in TARGETS:
        result = scenarios.get(target.scenario)
        if result is None or result.get("status") != "ok":
            continue
        value = target.value(result)
        if value is None:
            verdicts.append({"scenario": target.scenario, "figure": target.figure, "hit": None,
                             "value": None, "bound": target.bound, "at_least": target.at_least, "by_percent": None})
            continue
        hit = value >= target.bound if target.at_least else value <= target.bound
        by = (value - target.bound) / target.bound * 100
        verdicts.append({"scenario": target.scenario, "figure": target.figure, "hit": hit, "value": value,
                         "bound": target.bound, "at_least": target.at_least, "unit": target.unit,
                         "by_percent": round(by, 1)})
    return verdicts
