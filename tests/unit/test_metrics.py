"""Tallies on the request path: a fold writes exactly what direct writes would have written."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.core.metrics import HistogramTally, Metrics, Tally
from tests.helpers import metric_value, wait_until

BUCKETS = (0.001, 0.005, 0.1, 1)
# Below, on and between the bounds, above the last one, zero and a negative amount.
AMOUNTS = (0.0, -1.0, 0.0005, 0.001, 0.0010001, 0.005, 0.05, 0.1, 0.99, 1.0, 1.5, 1e9)


def _samples(registry: CollectorRegistry) -> list[str]:
    """The exposition without its `_created` times, which differ between two registries."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("h_seconds", "h", ["route"], registry=registry, buckets=BUCKETS)


def test_a_histogram_fold_writes_what_direct_observations_write() -> None:
    direct_registry, direct = _histogram()
    folded_registry, folded = _histogram()
    tally = HistogramTally(folded.labels("poll"))
    for amount in AMOUNTS:
        direct.labels("poll").observe(amount)
        tally.observe(amount)
    assert metric_value(generate_latest(folded_registry).decode(), "h_seconds_count", route="poll") == 0
    tally.fold()
    assert _samples(folded_registry) == _samples(direct_registry)
    tally.fold()  # nothing new: nothing written twice
    assert _samples(folded_registry) == _samples(direct_registry)


def test_a_histogram_without_the_private_values_passes_observations_through() -> None:
    class Plain:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    child = Plain()
    tally = HistogramTally(child)
    tally.observe(0.5)
    assert child.seen == [0.5]
    tally.fold()
    assert child.seen == [0.5]


def test_a_counter_tally_writes_its_sum_once_per_fold() -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["outcome"], registry=registry)
    tally = Tally(counter.labels("empty"))
    tally.inc()
    tally.inc(2)
    assert metric_value(generate_latest(registry).decode(), "c_total", outcome="empty") == 0
    tally.fold()
    tally.fold()
    assert metric_value(generate_latest(registry).decode(), "c_total", outcome="empty") == 3


def test_rendering_folds_first_so_a_scrape_of_this_process_is_exact() -> None:
    metrics = Metrics()
    metrics.poll_outcome("empty").inc()
    metrics.memory_result("hit").inc()
    metrics.barrier_result("heard").inc()
    metrics.barrier_polls_tally.inc(11)
    metrics.barrier_round_tally.observe(0.002)
    metrics.route_latency("device.poll").observe(0.003)
    text = metrics.render().decode()
    assert metric_value(text, "mailslot_polls_total", outcome="empty") == 1
    assert metric_value(text, "mailslot_poll_memory_total", result="hit") == 1
    assert metric_value(text, "mailslot_barrier_rounds_total", result="heard") == 1
    assert metric_value(text, "mailslot_barrier_polls_total") == 11
    assert metric_value(text, "mailslot_barrier_round_seconds_count") == 1
    assert metric_value(text, "mailslot_request_duration_seconds_bucket", route="device.poll", le="0.005") == 1
    assert metric_value(text, "mailslot_request_duration_seconds_bucket", route="device.poll", le="0.0025") == 0


async def test_the_fold_loop_writes_tallies_without_a_scrape() -> None:
    metrics = Metrics()
    metrics.poll_outcome("empty").inc()
    counted = metrics.polls.labels("empty")
    task = asyncio.create_task(metrics.run_folds(interval_s=0.001))
    try:
        await wait_until(lambda: counted._value.get() == 1, what="the tally folded")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
