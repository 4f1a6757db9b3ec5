"""The bench's settings: every size is a flag, and the defaults fit a 2-core, 24 GB machine.

Each default run of a scenario finishes in under two minutes there. `Settings` is frozen and
goes into the JSON result as is, so a result says exactly what was measured.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .pg_activity import FLUSH_S

__all__ = ["PER_PROCESS_CONNECTIONS", "Settings", "add_arguments", "settings_from"]

# One process may open about 20,000 files; stay well below for a gateway worker or a load generator.
PER_PROCESS_CONNECTIONS = 14_000

_HELP = {
    "scenarios": "scenarios to run, e.g. 1,2,3,4,5,6,7,8",
    "workers": "gateway worker processes (and ceiling server workers) for scenarios 1, 2 and 4",
    "results_dir": "folder for result.json, report.md and latency.png (one sub-folder per run)",
    "database_url": "an existing PostgreSQL database to use (empty: an embedded server in a temp folder)",
    "durable": "embedded PostgreSQL with fsync and synchronous commit (false: faster, as the tests run it)",
    "loadgen_processes": "load-generator processes for scenarios 1 and 2",
    "publish": "also write bench/RESULTS.md and bench/RESULTS.png from this run",
    "stats_flush_s": "seconds to wait after scenarios 3 and 7 send, for PostgreSQL's idle backends to publish "
                     "their statistics before the database figures are read (0: the figures miss up to 10 s)",
    "s1_people": "scenario 1: identified people (one device each) with empty queues",
    "s1_connections": "scenario 1: requests in flight, over all load-generator processes",
    "s1_seconds": "scenario 1: measured seconds per side (gateway, ceiling)",
    "s1_warmup_s": "scenario 1: unmeasured seconds before each side's measurement",
    "s2_people": "scenario 2: people per side, each with pending messages",
    "s2_messages": "scenario 2: pending messages per person (more than the claim limit of 10 makes devices race twice)",
    "s2_devices": "scenario 2: devices per person polling at the same time",
    "s2_concurrency": "scenario 2: people raced at once, over all processes",
    "s3_polls": "scenario 3: held long polls (one device per person)",
    "s3_rate": "scenario 3: messages sent per second to random parked people",
    "s3_seconds": "scenario 3: seconds of sending",
    "s3_wait_s": "scenario 3 and 5: the poll's `wait`, the web SDK's (and nchan's subscriber timeout)",
    "s3_ramp": "scenario 3 and 5: new connections opened per second while parking",
    "s3_workers": "scenario 3 and 5: server worker processes (0: enough to stay under the open-file cap)",
    "s4_people": "scenario 4: people in the broadcast's audience",
    "s4_parked": "scenario 4: parked devices of that audience (two per person)",
    "s4_chunk": "scenario 4: people created per import statement",
    "s5_subscribers": "scenario 5: held nchan subscribers (0: as many as scenario 3's polls)",
    "s5_rate": "scenario 5: publishes per second, one per subscriber (0: scenario 3's rate)",
    "s6_people": "scenario 6: people (one device each), each sent one message per round",
    "s6_rounds": "scenario 6: rounds, each standing for one day of a workspace with retention_days 1",
    "s6_connections": "scenario 6: device requests in flight while delivering a round",
    "s6_retention_interval_s": "scenario 6: the gateway's --retention-interval-s (seconds between sweeps)",
    "s7_polls": "scenario 7: held long polls (one device per person)",
    "s7_rate": "scenario 7: messages sent per second to random parked people, for its p99",
    "s7_seconds": "scenario 7: seconds of sending",
    "s7_wait_s": "scenario 7: the poll's `wait` (the gateway's maximum by default)",
    "s7_ramp": "scenario 7: new connections opened per second while parking",
    "s7_workers": "scenario 7: gateway worker processes (0: one per 10,000 polls)",
    "s8_people": "scenario 8: known people the backend sends to (each message to a random one)",
    "s8_concurrency": "scenario 8: send requests (or ceiling statements) in flight, over all processes",
    "s8_seconds": "scenario 8: measured seconds per mode (single, batch) and side (gateway, ceiling)",
    "s8_batch": "scenario 8: messages per POST /v1/messages/batch (and per ceiling statement in batch mode)",
}


@dataclass(frozen=True, slots=True)
class Settings:
    scenarios: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    workers: int = 2
    results_dir: Path = Path("bench/results")
    database_url: str = ""
    durable: bool = True
    loadgen_processes: int = 2
    publish: bool = False
    stats_flush_s: float = FLUSH_S
    s1_people: int = 5_000
    s1_connections: int = 64
    s1_seconds: float = 15.0
    s1_warmup_s: float = 2.0
    s2_people: int = 1_500
    s2_messages: int = 12
    s2_devices: int = 3
    s2_concurrency: int = 32
    s3_polls: int = 50_000
    s3_rate: float = 1_000.0
    s3_seconds: float = 60.0
    s3_wait_s: int = 60
    s3_ramp: float = 1_500.0
    s3_workers: int = 0
    s4_people: int = 1_000_000
    s4_parked: int = 1_000
    s4_chunk: int = 50_000
    s5_subscribers: int = 0
    s5_rate: float = 0.0
    s6_people: int = 2_000
    s6_rounds: int = 16
    s6_connections: int = 16
    s6_retention_interval_s: int = 1
    s7_polls: int = 100_000
    s7_rate: float = 100.0
    s7_seconds: float = 10.0
    s7_wait_s: int = 60
    s7_ramp: float = 1_000.0
    s7_workers: int = 0
    s8_people: int = 10_000
    s8_concurrency: int = 32
    s8_seconds: float = 10.0
    s8_batch: int = 100

    @property
    def held_workers(self) -> int:
        """Server processes for held connections: each stays well under the per-process open-file cap."""
        if self.s3_workers:
            return self.s3_workers
        return max(self.workers, math.ceil(max(self.s3_polls, self.nchan_subscribers) / PER_PROCESS_CONNECTIONS))

    @property
    def nchan_subscribers(self) -> int:
        return self.s5_subscribers or self.s3_polls

    @property
    def nchan_rate(self) -> float:
        return self.s5_rate or self.s3_rate

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["results_dir"] = str(self.results_dir)
        values["database_url"] = "(given)" if self.database_url else "(embedded)"
        values["held_workers"] = self.held_workers
        return values


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# Scenario numbers (bench/scenarios/__init__.py; the "s6 (new)" is 8, since 6 is retention).
_KNOWN = {1, 2, 3, 4, 5, 6, 7, 8}


def _scenarios(text: str) -> tuple[int, ...]:
    try:
        chosen = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,3,5, got {text!r}") from None
    if not chosen or not set(chosen) <= _KNOWN:
        raise argparse.ArgumentTypeError(f"scenarios are {', '.join(map(str, sorted(_KNOWN)))}, got {text!r}")
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, named after it, showing its default."""
    defaults = Settings()
    for field in fields(Settings):
        default = getattr(defaults, field.name)
        parse: Any = {bool: _bool, tuple: _scenarios, Path: Path}.get(type(default), type(default))
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=parse, default=None,
                            help=f"{_HELP[field.name]} (default: {shown})")


def settings_from(args: argparse.Namespace) -> Settings:
    values = {f.name: getattr(args, f.name) for f in fields(Settings) if getattr(args, f.name, None) is not None}
    return Settings(**values)
