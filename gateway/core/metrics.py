"""Prometheus metrics (prometheus-client), per app, aggregated across worker processes.

Why prometheus-client: it is the reference implementation of the text format and has a
multi-process mode. `mailslot serve --workers N` points PROMETHEUS_MULTIPROC_DIR at a folder
before starting workers; each worker then writes its values there and `/metrics` on any worker
reports the sum, so a scrape through the load balancer sees the whole host.
"""

from __future__ import annotations

import resource
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


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
        # Label children by value, bound once: `labels()` costs more than the increment itself, on
        # every request. The values are bounded (route names, poll outcomes).
        self._route_latency: dict[str, Any] = {}
        self._poll_outcomes: dict[str, Any] = {}
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


    def route_latency(self, route: str) -> Any:
        """The request latency histogram of one route."""
        child = self._route_latency.get(route)
        if child is None:
            child = self._route_latency[route] = self.request_latency.labels(route)
        return child

    def poll_outcome(self, outcome: str) -> Any:
        """The answered-polls counter of one outcome."""
        child = self._poll_outcomes.get(outcome)
        if child is None:
            child = self._poll_outcomes[outcome] = self.polls.labels(outcome)
        return child

    def render(self) -> bytes:
        """The text exposition: this process, or every worker when running multi-process."""
        if self._multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
