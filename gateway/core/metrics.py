"""Prometheus metrics (prometheus-client), per app, aggregated across worker processes.

Why prometheus-client: it is the reference implementation of the text format and has a
multi-process mode. `mailslot serve --workers N` points PROMETHEUS_MULTIPROC_DIR at a folder
before starting workers; each worker then writes its values there and `/metrics` on any worker
reports the sum, so a scrape through the load balancer sees the whole host.

Counts on the request path (answered polls, memory results, barrier rounds, request latency) are
tallied in plain numbers and folded into those values by `fold()`: once a second (`run_folds`),
before this process renders `/metrics`, and at shutdown. A multi-process write costs a lock, an
`os.getpid()` and an mmap write per value, five of them per empty poll; a fold writes each value
once. Another worker's counts reach a scrape up to `FOLD_INTERVAL_S` late.
"""

from __future__ import annotations

import asyncio
import bisect
import resource
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["FOLD_INTERVAL_S", "HistogramTally", "Metrics", "Tally"]

# How often a process folds its tallies into the values a scrape reads (see the module docstring).
FOLD_INTERVAL_S = 1.0

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Tally:
    """A counter child's increments, kept in a plain number until `fold` writes them."""

    __slots__ = ("_child", "_pending")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._pending: float = 0

    def inc(self, amount: float = 1) -> None:
        self._pending += amount

    def fold(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, 0
            self._child.inc(pending)


class HistogramTally:
    """A histogram child's observations, kept as per-bucket counts and a sum until `fold` writes them.

    prometheus_client has no public way to add many observations at once; a fold adds to the
    child's own bucket and sum values (`_buckets`, `_sum`, `_upper_bounds`, private to
    prometheus_client; tests/unit/test_metrics.py compares a fold with direct observations). A
    version without them gets every observation passed straight through instead.
    """

    __slots__ = ("_bounds", "_child", "_counts", "_sum")

    def __init__(self, child: Any) -> None:
        self._child = child
        bounds: list[float] | None = getattr(child, "_upper_bounds", None)
        batched = bounds is not None and hasattr(child, "_buckets") and hasattr(child, "_sum")
        self._bounds = list(bounds) if bounds is not None and batched else None
        self._counts = [0] * len(self._bounds or ())
        self._sum = 0.0

    def observe(self, amount: float) -> None:
        if self._bounds is None:
            self._child.observe(amount)
            return
        self._sum += amount
        # The first bucket whose bound is at least `amount`, as Histogram.observe picks it.
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1

    def fold(self) -> None:
        counts = self._counts
        if self._bounds is None or not any(counts):
            return
        total, self._sum = self._sum, 0.0
        self._counts = [0] * len(counts)
        self._child._sum.inc(total)
        for i, n in enumerate(counts):
            if n:
                self._child._buckets[i].inc(n)


_T = TypeVar("_T", Tally, HistogramTally)


class Metrics:
    def __init__(self, *, multiprocess: bool = False) -> None:
        self._multiprocess = multiprocess
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.parked_polls = Gauge(
            "mailslot_parked_polls", "Polls held open waiting for a message.",
            registry=registry, multiprocess_mode="livesum",
        )
        self.polls = Counter(
            "mailslot_polls", "Answered polls by outcome.", ["outcome"], registry=registry,
        )
        # hit: answered from memory; census: answered from the census (no entry, person not listed);
        # miss: nothing remembered; stale: remembered, but a notice or a failed barrier sent it to the
        # database; off: memory not trusted (listener down, or disabled).
        self.poll_memory = Counter(
            "mailslot_poll_memory", "Claims answered from memory of quiet people, or not, by result.", ["result"],
            registry=registry,
        )
        # A device's next poll acknowledging (`shown`, `dismissed`) every offer of a claim that saw
        # nothing else pending (decision 0045): acked: the person became an entry with no claim;
        # unacked: an offer not ended by an accepted report; refused: a notice, a stamp rotation or a
        # clear since that claim, or the note outlived `MAILSLOT_QUIET_TTL_S`.
        self.poll_memory_acks = Counter(
            "mailslot_poll_memory_acks", "Acknowledging polls that made a person an entry of memory, or not.",
            ["result"], registry=registry,
        )
        # The commit-order barrier (decision 0021): markers by result, polls that waited on them,
        # and each heard marker's round trip (a poll waits one to two of these).
        self.barrier_rounds = Counter(
            "mailslot_barrier_rounds", "Barrier markers sent, by result (heard, failed).", ["result"],
            registry=registry,
        )
        self.barrier_polls = Counter(
            "mailslot_barrier_polls", "Short polls that waited on a barrier marker.", registry=registry,
        )
        self.barrier_round_seconds = Histogram(
            "mailslot_barrier_round_seconds", "From sending a barrier marker to hearing it back.",
            registry=registry, buckets=(0.0001, 0.00025, 0.0005, *_LATENCY_BUCKETS[:11]),
        )
        self.claimed = Counter(
            "mailslot_claimed_messages", "Messages newly offered to a device.", registry=registry,
        )
        self.wakeups = Counter(
            "mailslot_wakeups", "Parked polls woken, by reason.", ["reason"], registry=registry,
        )
        self.notification_lag = Histogram(
            "mailslot_notification_lag_seconds", "From a send's NOTIFY to this process receiving it.",
            registry=registry, buckets=_LATENCY_BUCKETS,
        )
        self.listener_reconnects = Counter(
            "mailslot_listener_reconnects", "Times the LISTEN connection was re-established.", registry=registry,
        )
        self.request_latency = Histogram(
            "mailslot_request_duration_seconds", "Request latency by route (held polls included).",
            ["route"], registry=registry, buckets=_LATENCY_BUCKETS,
        )
        # Tallies of label children by value, bound once: `labels()` costs more than the increment
        # itself, on every request. The values are bounded (route names, poll outcomes, results).
        self._route_latency: dict[str, HistogramTally] = {}
        self._poll_outcomes: dict[str, Tally] = {}
        self._memory_results: dict[str, Tally] = {}
        self._memory_acks: dict[str, Tally] = {}
        self._barrier_results: dict[str, Tally] = {}
        self._tallies: list[Tally | HistogramTally] = []
        self.barrier_polls_tally = self._tally(Tally(self.barrier_polls))
        self.barrier_round_tally = self._tally(HistogramTally(self.barrier_round_seconds))
        # Labels stay bounded: group is device, server or public; reason a `ratelimits.Reason`.
        self.rate_limited = Counter(
            "mailslot_rate_limited", "Requests refused with 429, by route group and the limit that refused them.",
            ["group", "reason"], registry=registry,
        )
        self.closed_connections = Counter(
            "mailslot_closed_connections",
            "Connections closed by the server's guards: per_ip_limit, header_timeout, body_timeout.",
            ["reason"], registry=registry,
        )
        # serve raises the soft limit to the hard one at start; a low value here explains
        # refused connections ("Too many open files") before anything else does.
        self.open_files_limit = Gauge(
            "mailslot_open_files_limit", "The process's limit of open files (RLIMIT_NOFILE, soft).",
            registry=registry, multiprocess_mode="max",
        )
        self.open_files_limit.set(resource.getrlimit(resource.RLIMIT_NOFILE)[0])

    def _tally(self, tally: _T) -> _T:
        self._tallies.append(tally)
        return tally

    def route_latency(self, route: str) -> HistogramTally:
        """The request latency histogram of one route."""
        tally = self._route_latency.get(route)
        if tally is None:
            tally = self._route_latency[route] = self._tally(HistogramTally(self.request_latency.labels(route)))
        return tally

    def poll_outcome(self, outcome: str) -> Tally:
        """The answered-polls counter of one outcome."""
        return self._counter_tally(self._poll_outcomes, self.polls, outcome)

    def memory_result(self, result: str) -> Tally:
        """The poll-memory counter of one result (hit, census, miss, stale, off)."""
        return self._counter_tally(self._memory_results, self.poll_memory, result)

    def memory_ack(self, result: str) -> Tally:
        """The acknowledging-poll counter of one result (acked, unacked, refused)."""
        return self._counter_tally(self._memory_acks, self.poll_memory_acks, result)

    def barrier_result(self, result: str) -> Tally:
        """The barrier-rounds counter of one result (heard, failed)."""
        return self._counter_tally(self._barrier_results, self.barrier_rounds, result)

    def _counter_tally(self, bound: dict[str, Tally], counter: Counter, label: str) -> Tally:
        """The tally of `counter`'s child for `label`, bound once into `bound`."""
        tally = bound.get(label)
        if tally is None:
            tally = bound[label] = self._tally(Tally(counter.labels(label)))
        return tally

    def fold(self) -> None:
        """Write every tally into its prometheus value (no await: no count is lost or doubled)."""
        for tally in self._tallies:
            tally.fold()

    async def run_folds(self, interval_s: float = FOLD_INTERVAL_S) -> None:
        """Fold every `interval_s`, for as long as the app runs (the app folds once more at cleanup)."""
        while True:
            await asyncio.sleep(interval_s)
            self.fold()

    def render(self) -> bytes:
        """The text exposition: this process, or every worker when running multi-process."""
        self.fold()
        if self._multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

