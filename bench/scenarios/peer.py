"""Scenario 5: the peer, nginx + nchan, held long-poll subscribers and one publish per subscriber.

Measured exactly like scenario 3 so the two sit side by side: the server's process-tree growth
per held subscriber (RSS and PSS: nchan's workers share a memory zone), the kernel's TCP memory,
and publish-to-receive latency seen by the subscribers. Skipped, not failed, when nginx or the
nchan module is missing; the harness never installs anything.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from ..loadgen import Fleet
from ..nchan import INSTALL_HINT, Nchan, find_nginx
from ..procs import KernelMemory, socket_count
from ..settings import PER_PROCESS_CONNECTIONS
from ..stats import summarize
from .base import Context, Scenario, Skip, correctness
from .held_polls import SENDS_PER_PROCESS, drain, source_address, wait_until_held

__all__ = ["NchanPeer"]

_NOFILE = 19_500  # under the machine's per-process cap of about 20,000


class NchanPeer(Scenario):
    key = "s5"
    title = "Peer: nginx + nchan"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.nchan: Nchan | None = None

    def setup(self) -> None:
        if find_nginx() is None:
            raise Skip(INSTALL_HINT)
        s = self.settings
        self.channels = [f"s5-{i}" for i in range(s.nchan_subscribers)]
        self.nchan = Nchan(self.context.work_dir, workers=s.held_workers, wait_s=s.s3_wait_s, nofile=_NOFILE,
                           max_seconds=1800)
        self.nchan.start()
        self.say(f"nginx + nchan with {s.held_workers} workers on {self.nchan.base_url}")

    def run(self) -> dict[str, Any]:
        s = self.settings
        nchan = self.nchan
        assert nchan is not None
        self.arm()
        time.sleep(1.0)
        memory_before, kernel_before = nchan.memory(), KernelMemory.now()
        sockets_before = socket_count(nchan.pids())
        processes = max(1, math.ceil(len(self.channels) / PER_PROCESS_CONNECTIONS))
        specs = [{"kind": "nchan_subscribers", "base_url": nchan.base_url, "channels": self.channels[k::processes],
                  "wait_s": s.s3_wait_s, "ramp_per_s": s.s3_ramp / processes, "local_addr": source_address(k),
                  "deadline": self.deadline} for k in range(processes)]
        order = list(self.channels)
        random.Random(5).shuffle(order)
        publishers = max(1, math.ceil(s.nchan_rate / SENDS_PER_PROCESS))
        publisher_specs = [{"kind": "nchan_publisher", "base_url": nchan.base_url, "channels": order[k::publishers],
                            "rate": s.nchan_rate / publishers,
                            "deadline": min(self.deadline, time.time() + len(order) / s.nchan_rate + 120)}
                           for k in range(publishers)]
        with Fleet(specs, name="s5-subscribers") as held:
            held.wait_event("ready", len(self.channels) / s.s3_ramp + 120)
            subscribed = wait_until_held(self, nchan.subscribers, len(self.channels))
            memory_held, kernel_held = nchan.memory(), KernelMemory.now()
            connections = socket_count(nchan.pids()) - sockets_before
            grown = memory_held - memory_before
            self.say(f"{subscribed:,} subscribers: nginx RSS +{grown.rss / 2**20:,.1f} MiB; "
                     f"publishing {len(order):,} at {s.nchan_rate:,.0f}/s")
            with Fleet(publisher_specs, name="s5-publisher") as publisher:
                published_results = publisher.results()
            published = {name for r in published_results for name in r["published"]}
            drain(self, held, len(published))
            held.send("stop")
            results = held.results()
        delivered: dict[str, set[str]] = {}
        receipts: dict[str, int] = {}
        latencies: list[float] = []
        for r in results:
            for name, message_id, latency in r["received"]:
                delivered.setdefault(name, set()).add(name)
                receipts[f"{name}/{message_id}"] = receipts.get(f"{name}/{message_id}", 0) + 1
                latencies.append(latency)
        counts = correctness(delivered, published)
        # One subscriber per channel: a duplicate here is the same message answered twice.
        counts["duplicates"] = sum(n - 1 for n in receipts.values())
        self.samples["publish_to_receive"] = latencies
        errors: dict[str, int] = {}
        for r in [*results, *published_results]:
            for code, n in r["errors"].items():
                errors[code] = errors.get(code, 0) + n
        summary = summarize(latencies)
        self.say(f"publish-to-receive p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms; "
                 f"duplicates {counts['duplicates']}, lost {counts['lost']}")
        return {
            "held": subscribed,
            "target_held": len(self.channels),
            "workers": s.held_workers,
            "nginx_rss_before_bytes": memory_before.rss,
            "nginx_rss_held_bytes": memory_held.rss,
            "nginx_connections": connections,
            "rss_per_held_poll_bytes": round(grown.rss / max(subscribed, 1), 1),
            "rss_per_connection_bytes": round(grown.rss / max(connections, 1), 1),
            "pss_per_held_poll_bytes": round(grown.pss / max(subscribed, 1), 1),
            **kernel_held.per_held(kernel_before, subscribed),
            "published": len(published),
            "due": len(order),
            "publish_rate": s.nchan_rate,
            "achieved_send_rate": round(len(published) * s.nchan_rate / max(len(order), 1), 1),
            "late_publishes": sum(r["late"] for r in published_results),
            "unfinished_publishes": sum(r["unfinished"] for r in published_results),
            "publish_latency": summarize([x for r in published_results for x in r["latencies"]]),
            "publish_to_receive": summary,
            "polls": sum(r["polls"] for r in results),
            "errors": errors,
            **counts,
        }

    def teardown(self) -> None:
        if self.nchan is not None:
            self.nchan.stop()
