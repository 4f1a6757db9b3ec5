"""Scenario 3: N held long polls, then messages sent at a steady rate to random parked people.

Memory per held poll is the growth of the gateway's process tree (RSS, and PSS) from before the
first poll to the moment all N are parked, divided by N; the kernel's TCP memory (both ends of
every loopback connection) is reported beside it, not in it. Send-to-receive latency is what
the devices see: their clock at the answer minus the `sent_at` the sender stamped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ..fetch import fetch_json
from ..harness import Gateway
from ..loadgen import Fleet
from ..pg_activity import activity, per_unit
from ..procs import KernelMemory, socket_count
from ..seed import import_people
from ..settings import PER_PROCESS_CONNECTIONS
from ..stats import summarize
from .base import Context, Scenario, correctness

__all__ = ["HeldPolls", "drain", "late_or_lost", "source_address", "timeline", "wait_until_held"]

SENDS_PER_PROCESS = 1_500.0  # one sender process keeps this rate on this machine with room to spare
# Requests a sender keeps open, in seconds of its rate: a backend that offers a rate keeps open
# what the gateway's latency requires (rate x latency). With a fixed 256, a 0.5 s answer capped
# the offered rate at ~500/s and the bench measured its own sender instead of the gateway.
IN_FLIGHT_S = 2.0
# How long the gateway's memory of quiet people outlives one held poll's wait.
QUIET_MARGIN_S = 60
CHECKED = 300  # undelivered messages whose state is read back through the server API


def late_or_lost(states: dict[str, int], undelivered: int) -> dict[str, int]:
    """Split undelivered messages: still queued or offered when the run stopped is `late`; anything else is `lost`.

    Only up to CHECKED of them were read back; the unread rest are reported as `unchecked`.
    """
    checked = sum(states.values())
    late = states.get("queued", 0) + states.get("offered", 0)
    return {"late": late, "lost": checked - late, "unchecked": undelivered - checked}


TIMELINE_COLUMNS = ("second", "from_first_send_s", "sends_made", "sends_accepted", "send_answered_p50_ms",
                    "send_answered_p99_ms", "delivered", "send_to_receive_p50_ms", "send_to_receive_p99_ms",
                    "polls_answered")


def timeline(held_results: list[dict[str, Any]], sent_results: list[dict[str, Any]]) -> list[list[Any]]:
    """One row a wall-clock second (TIMELINE_COLUMNS): sends made and accepted in it, the delivery
    latency of the sends made in it, and the polls the devices got answers to in it.

    Why: a p99 over the whole run cannot tell a steady queue from waves; per second it can
    (bench/RESULTS.md, "Issue 12, sixth round"). Latency is by the second the send was made, so a
    stall shows at the sends it delayed, not at the moment it ended."""
    made: dict[int, int] = {}
    accepted: dict[int, int] = {}
    answers: dict[int, int] = {}
    by_second: dict[int, list[float]] = {}
    answered: dict[int, list[float]] = {}
    for r in sent_results:
        for key, values in r.get("answered_in", {}).items():
            answered.setdefault(int(key), []).extend(values)
        for key, n in r.get("made", {}).items():
            made[int(key)] = made.get(int(key), 0) + n
        for key, n in r.get("accepted", {}).items():
            accepted[int(key)] = accepted.get(int(key), 0) + n
    for r in held_results:
        for key, n in r.get("answers", {}).items():
            answers[int(key)] = answers.get(int(key), 0) + n
        for (_, _, latency), sent_at in zip(r["received"], r.get("sent_at", ()), strict=False):
            by_second.setdefault(int(sent_at), []).append(latency)
    seconds = set(made) | set(answers) | set(by_second)
    if not seconds:
        return []
    first_send = min(made) if made else min(seconds)
    rows: list[list[Any]] = []
    for second in range(min(seconds), max(seconds) + 1):
        latency = summarize(by_second.get(second, []))
        send = summarize(answered.get(second, []))
        rows.append([second, second - first_send, made.get(second, 0), accepted.get(second, 0), send["p50_ms"],
                     send["p99_ms"], latency["count"], latency["p50_ms"], latency["p99_ms"], answers.get(second, 0)])
    return rows


def source_address(index: int) -> str:
    """A loopback source address per load generator, each with its own ephemeral ports: 127.0.0.2,
    127.0.1.2, 127.0.0.3, 127.0.1.3, …: two ranges, so 100,000 connections never run short of ports."""
    return f"127.0.{index % 2}.{index // 2 + 2}"


def wait_until_held(
    scenario: Scenario, count: Callable[[], float], target: int, *, plateau_s: float = 10.0, timeout_s: float = 30.0
) -> int:
    """Wait until `count()` reaches `target`, stops growing for `plateau_s`, or `timeout_s` passed; the last count.

    Call it once every device has been started: a server that cannot hold `target` polls shows a
    plateau (held polls time out and come back as fast as new ones park), and the figures are
    then taken at that plateau, with the count reported beside them.
    """
    started = best_at = last_said = time.monotonic()
    best = held = 0
    while True:
        try:
            held = int(count())
        except OSError as exc:  # an overloaded server answers its status page late: keep the last count
            scenario.say(f"status read failed ({exc}); still waiting")
            # A count not read says nothing of a plateau: the time without growth starts again.
            best_at = time.monotonic()
        now = time.monotonic()
        if held > best:
            best, best_at = held, now
        if held >= target:
            return held
        if now - best_at > plateau_s or now - started > timeout_s:
            scenario.say(f"held polls stay below the target: {held:,} of {target:,} (best {best:,})")
            return held
        if now - last_said >= 2:
            scenario.say(f"held {held:,}/{target:,}")
            last_said = now
        time.sleep(0.5)


def drain(scenario: Scenario, fleet: Fleet, expected: int, *, idle_s: float = 5.0, cap_s: float = 20.0) -> int:
    """Wait until the devices have `expected` messages, or none arrived for `idle_s`, or `cap_s` passed."""
    started = last_change = time.monotonic()
    received, last_said = -1, 0.0
    while True:
        now_received = sum(p["received"] for p in fleet.ask("progress"))
        now = time.monotonic()
        if now_received != received:
            received, last_change = now_received, now
        if received >= expected or now - last_change > idle_s or now - started > cap_s:
            return received
        if now - last_said >= 5:
            scenario.say(f"received {received:,}/{expected:,}")
            last_said = now
        time.sleep(0.5)


class HeldPolls(Scenario):
    key = "s3"
    title = "Held polls"
    hold_timeout_s = 30.0  # how long the polls get to park once every device has started

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.gateway: Gateway | None = None
        s = self.settings
        # The shape of the run; scenario 7 holds more polls with the same code.
        self.polls, self.rate, self.send_seconds = s.s3_polls, s.s3_rate, s.s3_seconds
        self.wait_s, self.ramp, self.workers = s.s3_wait_s, s.s3_ramp, s.held_workers

    def setup(self) -> None:
        self.credentials = self.context.workspace(f"bench-{self.key}")
        self.users = [f"{self.key}-person-{i}" for i in range(self.polls)]
        import_people(self.context.database_url, self.credentials.workspace_id, self.users)
        self.say(f"{len(self.users):,} people; starting the gateway ({self.workers} workers)")
        self.gateway = self.context.gateway(self.workers, self.gateway_flags())
        self.gateway.start()

    def gateway_flags(self) -> tuple[str, ...]:
        """Flags the gateway needs beyond the bench's defaults: each held poll comes back every
        `wait` seconds, and with the default 30 s memory of quiet people below that, every return
        would claim again, so the memory outlives a wait, as docs/operations.md advises for a
        gateway holding many polls."""
        return ("--max-wait-s", str(self.wait_s), "--quiet-ttl-s", str(self.wait_s + QUIET_MARGIN_S))

    def _held_specs(self) -> list[dict[str, Any]]:
        assert self.gateway is not None
        processes = max(1, math.ceil(len(self.users) / PER_PROCESS_CONNECTIONS))
        devices = [(i, user, f"web-{i}") for i, user in enumerate(self.users)]
        return [{"kind": "held_polls", "base_url": self.gateway.base_url, "site_id": self.credentials.site_id,
                 "devices": devices[k::processes], "wait_s": self.wait_s, "ramp_per_s": self.ramp / processes,
                 "local_addr": source_address(k), "deadline": self.deadline} for k in range(processes)]

    def _sender_specs(self) -> list[dict[str, Any]]:
        assert self.gateway is not None
        processes = max(1, math.ceil(self.rate / SENDS_PER_PROCESS))
        return [{"kind": "sender", "base_url": self.gateway.base_url, "api_key": self.credentials.api_key,
                 "users": self.users, "rate": self.rate / processes, "seconds": self.send_seconds, "seed": k,
                 "in_flight": max(256, math.ceil(self.rate / processes * IN_FLIGHT_S)),
                 "finish_s": 10.0, "deadline": min(self.deadline, time.time() + self.send_seconds + 60)}
                for k in range(processes)]

    def run(self) -> dict[str, Any]:
        gateway = self.gateway
        assert gateway is not None
        self.arm()
        time.sleep(1.0)  # let the workers finish starting before the baseline
        memory_before, kernel_before = gateway.memory(), KernelMemory.now()
        sockets_before = socket_count(gateway.pids())
        with Fleet(self._held_specs(), name=f"{self.key}-held") as held:
            held.wait_event("ready", len(self.users) / self.ramp + 120)
            parked = wait_until_held(self, lambda: gateway.metric("mailslot_parked_polls"), len(self.users),
                                     timeout_s=self.hold_timeout_s)
            memory_held, kernel_held = gateway.memory(), KernelMemory.now()
            connections = socket_count(gateway.pids()) - sockets_before
            grown = memory_held - memory_before
            self.say(f"{parked:,} parked: gateway RSS +{grown.rss / 2**20:,.1f} MiB "
                     f"({grown.rss / max(parked, 1) / 1024:.2f} KiB per held poll); "
                     f"sending {self.rate:,.0f}/s for {self.send_seconds:.0f}s")
            database_before = activity(self.context.database_url)
            with Fleet(self._sender_specs(), name=f"{self.key}-sender") as senders:
                sent_results = senders.results()
            sent = {message_id for r in sent_results for message_id, _ in r["sent"]}
            drain(self, held, len(sent))
            time.sleep(self.settings.stats_flush_s)  # idle backends publish their last counters
            database_after = activity(self.context.database_url)
            try:
                counters = gateway.metrics("mailslot_wakeups_total", "mailslot_listener_reconnects_total",
                                           "mailslot_polls_total", "mailslot_notification_lag_seconds_sum",
                                           "mailslot_notification_lag_seconds_count", "mailslot_poll_memory_total",
                                           "mailslot_poll_memory_acks_total")
            except OSError as exc:
                counters = {f"unreadable: {exc}": 0.0}
            held.send("stop")
            held_results = held.results()
        delivered: dict[str, set[str]] = {}
        latencies: list[float] = []
        for r in held_results:
            for message_id, device, latency in r["received"]:
                delivered.setdefault(message_id, set()).add(str(device))
                latencies.append(latency)
        counts = correctness(delivered, sent)
        undelivered = self._states(sorted(sent - delivered.keys())[:CHECKED])
        counts.update(late_or_lost(undelivered, counts["lost"]))
        self.samples["send_to_receive"] = latencies
        send_latencies = [x for r in sent_results for x in r["latencies"]]
        errors: dict[str, int] = {}
        for r in [*held_results, *sent_results]:
            for code, n in r["errors"].items():
                errors[code] = errors.get(code, 0) + n
        summary = summarize(latencies)
        database = per_unit(database_before, database_after, len(delivered))
        self.say(f"database during the sends: {database['xact_commit']:,.0f} commits "
                 f"({database['xact_commit_per_unit']} per delivered message), "
                 f"{database['wal_fsyncs']:,.0f} WAL flushes ({database['wal_fsyncs_per_unit']} per delivered message)")
        self.say(f"send-to-receive p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms;"
                 f" duplicates {counts['duplicates']}, lost {counts['lost']}")
        return {
            "held": parked,
            "target_held": len(self.users),
            "workers": self.workers,
            "gateway_rss_before_bytes": memory_before.rss,
            "gateway_rss_held_bytes": memory_held.rss,
            "gateway_connections": connections,
            "rss_per_held_poll_bytes": round(grown.rss / max(parked, 1), 1),
            "rss_per_connection_bytes": round(grown.rss / max(connections, 1), 1),
            "pss_per_held_poll_bytes": round(grown.pss / max(parked, 1), 1),
            **kernel_held.per_held(kernel_before, parked),
            "sent": len(sent),
            "due": int(self.rate * self.send_seconds),
            "send_rate": self.rate,
            "achieved_send_rate": round(len(sent) / self.send_seconds, 1),
            "send_seconds": self.send_seconds,
            "late_sends": sum(r["late"] for r in sent_results),
            "unfinished_sends": sum(r["unfinished"] for r in sent_results),
            "send_latency": summarize(send_latencies),
            "send_to_receive": summary,
            "polls": sum(r["polls"] for r in held_results),
            "errors": errors,
            "gateway_counters": counters,
            "database": database,
            "undelivered_states": undelivered,
            **counts,
            "timeline_columns": list(TIMELINE_COLUMNS),
            "timeline": timeline(held_results, sent_results),
        }

    def _states(self, message_ids: list[str]) -> dict[str, int]:
        """Server-side states of messages no device reported: late (still queued or offered) or gone."""
        assert self.gateway is not None
        states: dict[str, int] = {}
        for message_id in message_ids:
            try:
                status, answer = fetch_json("GET", f"{self.gateway.base_url}/v1/messages/{message_id}",
                                            headers={"Authorization": f"Bearer {self.credentials.api_key}"})
            except OSError:
                status, answer = 0, None
            state = answer.get("state", str(status)) if isinstance(answer, dict) else f"unread ({status})"
            states[state] = states.get(state, 0) + 1
        return states

    def teardown(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
