"""Rate limits and quotas: token buckets per client address, site, person, person's events and API key.

Rules. Each bucket is one float, its theoretical arrival time (GCRA, the token bucket's
arithmetic without a timer): a request costing `c` is allowed when the bucket would still be
within `burst` after adding `c / rate_per_s` seconds; a refused request costs nothing. The
buckets live in this process: with N processes behind a load balancer each counts on its own,
so the effective limit is up to N times the configured one (docs/operations.md says how to set
it). A bucket that has refilled is the same as no bucket, so a sweep (every `sweep_s`, or when a
family reaches `max_keys`) forgets those, and memory is bounded by the keys active within one
refill period. Time is an input (`monotonic`), so tests move it instead of sleeping.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from storage import Workspace

from ..errors import RateLimited

__all__ = [
    "WORKSPACE_LIMITS",
    "Buckets",
    "Limit",
    "Limits",
    "RateLimiter",
    "Reason",
    "parse_limit",
]

# The limits a workspace may set for itself (PATCH /v1/workspace `rate_limits`); the address
# limit is the server's alone, since it is checked before any workspace is known.
WORKSPACE_LIMITS = ("site", "person", "events", "api_key")

_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
_SPEC = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|min|h)\s*(?::\s*([0-9]+)\s*)?$")


class Reason(StrEnum):
    """Which limit refused a request: the `reason` label of `mailslot_rate_limited_total`."""

    ADDRESS = "address"
    SITE = "site"
    PERSON = "person"
    EVENTS = "events"
    API_KEY = "api_key"


# What a 429's message says ran out, by reason.
_WHAT = {
    Reason.ADDRESS: "requests from this client address",
    Reason.SITE: "requests for this site",
    Reason.PERSON: "requests for this person",
    Reason.EVENTS: "events written for this person",
    Reason.API_KEY: "requests with this workspace's API key",
}


@dataclass(frozen=True, slots=True)
class Limit:
    """`rate_per_s` requests (or events) a second on average, and up to `burst` at once."""

    rate_per_s: float
    burst: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise ValueError("the rate must be a positive number")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError("the burst must be at least 1")

    def as_json(self) -> dict[str, float]:
        return {"rate_per_s": self.rate_per_s, "burst": self.burst}


def parse_limit(text: str) -> Limit | None:
    """`RATE/UNIT[:BURST]` (unit s, min or h; burst defaults to RATE), or `off` for no limit."""
    if text.strip().lower() in {"off", "0", "none"}:
        return None
    match = _SPEC.match(text)
    if match is None:
        raise ValueError("expected RATE/UNIT[:BURST] such as 20/s:400 or 600/min, or off")
    count, unit, burst = float(match[1]), match[2], match[3]
    return Limit(rate_per_s=count / _UNITS[unit], burst=float(burst) if burst is not None else max(count, 1.0))


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit; None: not limited."""

    address: Limit | None = None
    site: Limit | None = None
    person: Limit | None = None
    events: Limit | None = None
    api_key: Limit | None = None

    def with_overrides(self, overrides: Mapping[str, Any]) -> Limits:
        """These limits with a workspace's own (already validated by the API) in place of the server's."""
        changes = {
            name: Limit(float(value["rate_per_s"]), float(value["burst"]))
            for name, value in overrides.items()
            if name in WORKSPACE_LIMITS and isinstance(value, dict)
        }
        return replace(self, **changes)


_UNLIMITED = Limits()


class Buckets:
    """One family of buckets by key: a dict lookup and some arithmetic per request."""

    def __init__(self, *, max_keys: int = 100_000, sweep_s: float = 60.0) -> None:
        self._arrival: dict[Hashable, float] = {}
        self._max_keys = max_keys
        self._sweep_s = sweep_s
        self._next_sweep = -math.inf

    def __len__(self) -> int:
        return len(self._arrival)

    def take(self, key: Hashable, limit: Limit, now: float, cost: float = 1.0, *, record: bool = True) -> float:
        """0.0 when allowed (and counted, unless `record` is false); otherwise the seconds until it would be."""
        interval = 1.0 / limit.rate_per_s
        tolerance = limit.burst * interval
        arrival = self._arrival.get(key, now)
        if arrival < now:
            arrival = now
        elif arrival > now + tolerance:  # counted under a stricter limit since changed: empty, not overdrawn
            arrival = self._arrival[key] = now + tolerance
        # A request larger than the burst would never pass: it needs a full bucket instead.
        after = arrival + min(cost, limit.burst) * interval
        excess = after - now - tolerance
        if excess > 1e-9:
            return excess
        if not record:
            return 0.0
        if now >= self._next_sweep or len(self._arrival) >= self._max_keys:
            self.sweep(now)
        self._arrival[key] = after
        return 0.0

    def sweep(self, now: float) -> None:
        """Forget refilled buckets; if too many remain busy, the oldest go (they start full again)."""
        self._next_sweep = now + self._sweep_s
        for key in [k for k, arrival in self._arrival.items() if arrival <= now]:
            del self._arrival[key]
        if len(self._arrival) >= self._max_keys:
            for key in list(self._arrival)[: len(self._arrival) - self._max_keys // 2]:
                del self._arrival[key]


class Counter(Protocol):
    def labels(self, *values: str) -> Any: ...


class RateLimiter:
    """The process's buckets and the server's limits; each check raises `RateLimited` or returns."""

    def __init__(
        self,
        limits: Limits,
        *,
        enabled: bool = True,
        refused: Counter | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limits = limits
        self.enabled = enabled
        self._refused = refused
        self._monotonic = monotonic
        self._addresses = Buckets(max_keys=max_keys)
        self._sites = Buckets(max_keys=max_keys)
        self._people = Buckets(max_keys=max_keys)
        self._events = Buckets(max_keys=max_keys)
        self._api_keys = Buckets(max_keys=max_keys)
        # Workspace id -> (the overrides they were built from, the merged limits).
        self._merged: dict[int, tuple[dict[str, Any], Limits]] = {}

    def for_workspace(self, workspace: Workspace) -> Limits:
        """The limits in force for a workspace: the server's with the workspace's own in their place
        (none when limits are off); cached while the workspace's stay the same."""
        if not self.enabled:
            return _UNLIMITED
        if not workspace.rate_limits:
            return self.limits
        cached = self._merged.get(workspace.id)
        if cached is not None and cached[0] is workspace.rate_limits:
            return cached[1]
        if len(self._merged) >= 10_000:
            self._merged.clear()
        merged = self.limits.with_overrides(workspace.rate_limits)
        self._merged[workspace.id] = (workspace.rate_limits, merged)
        return merged

    def check_address(self, address: str, group: str, *, count: bool = True) -> None:
        """A request from a client address that no API key vouches for; `count=False` only checks."""
        limit = self.limits.address
        if self.enabled and limit is not None:
            self._take(self._addresses, address, limit, 1.0, group, Reason.ADDRESS, record=count)

    def check_device(self, workspace: Workspace, user: str, *, events: int = 0) -> None:
        """A device request of a site and person that passed its identity proof; `events` it writes."""
        if not self.enabled:
            return
        limits = self.for_workspace(workspace)
        if limits.site is not None:
            self._take(self._sites, workspace.id, limits.site, 1.0, "device", Reason.SITE)
        if limits.person is not None:
            self._take(self._people, (workspace.id, user), limits.person, 1.0, "device", Reason.PERSON)
        if events and limits.events is not None:
            self._take(self._events, (workspace.id, user), limits.events, float(events), "device", Reason.EVENTS)

    def check_api_key(self, workspace: Workspace) -> None:
        """A server-API request: the workspace's keys share one bucket."""
        if not self.enabled:
            return
        limit = self.for_workspace(workspace).api_key
        if limit is not None:
            self._take(self._api_keys, workspace.id, limit, 1.0, "server", Reason.API_KEY)

    def _take(
        self, buckets: Buckets, key: Hashable, limit: Limit, cost: float, group: str, reason: Reason,
        *, record: bool = True,
    ) -> None:
        wait_s = buckets.take(key, limit, self._monotonic(), cost, record=record)
        if wait_s:
            if self._refused is not None:
                self._refused.labels(group, reason.value).inc()
            raise RateLimited(_WHAT[reason], retry_after_s=max(1, math.ceil(wait_s)))
