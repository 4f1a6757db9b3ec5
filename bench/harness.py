"""Start and stop what a bench run measures: PostgreSQL, the gateway with N workers, the ceiling server.

Rules: each server runs in its own session with its output in a log file under the run's work
folder; every wait has a deadline; `stop()` signals the process, waits, then kills whatever is
left of its tree, and is safe to call twice or after a failed start.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import asyncpg
import psutil

import storage

from .fetch import fetch_json, fetch_text
from .procs import Memory, stop_tree, tree_memory, tree_pids

__all__ = ["CLAIM_LIMIT", "POOL_MAX", "CeilingServer", "Database", "Gateway", "Service", "free_port"]

# Passed to the gateway explicitly, so that the claim ceiling of scenario 2 can use the same values.
POOL_MAX = 10
CLAIM_LIMIT = 10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Database:
    """The run's PostgreSQL: a given URL, or an embedded server under the work folder, stopped at the end."""

    def __init__(self, work_dir: Path, url: str = "", *, durable: bool = True) -> None:
        self._work_dir = work_dir
        self._given = url
        self._durable = durable
        self._embedded: storage.EmbeddedPostgres | None = None
        self.url = url

    def start(self) -> str:
        if not self._given:
            self._embedded = storage.EmbeddedPostgres(self._work_dir / "pg", durable=self._durable)
            self.url = self._embedded.start()
        asyncio.run(storage.apply_migrations(self.url))
        return self.url

    def version(self) -> str:
        async def read() -> str:
            conn = await asyncpg.connect(self.url)
            try:
                return str(await conn.fetchval("SELECT version()"))
            finally:
                await conn.close()

        return asyncio.run(read())

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Service:
    """A server subprocess listening on 127.0.0.1:port with `workers` processes sharing the port."""

    name = "service"

    def __init__(self, log_dir: Path, *, workers: int, max_seconds: int = 1800) -> None:
        self.workers = workers
        self.max_seconds = max_seconds
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_dir / f"{self.name}-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 90.0) -> None:
        """Start and wait until every worker listens (SO_REUSEPORT spreads connections only over those)."""
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._bounded(self.command()), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while self.listening() < self.workers:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._process.returncode}; see {self._log_path}:\n"
                                   + self.log_tail())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not listen within {timeout_s:.0f}s; see {self._log_path}")
            time.sleep(0.1)

    def _bounded(self, command: list[str]) -> list[str]:
        """Under coreutils `timeout`: the server stops by itself even if the bench is killed."""
        timeout = shutil.which("timeout")
        if timeout is None:
            return command
        return [timeout, "--kill-after=15", str(self.max_seconds), *command]

    def listening(self) -> int:
        """How many processes of the tree have a listening socket on our port."""
        count = 0
        for pid in self.pids():
            try:
                connections = psutil.Process(pid).net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in connections):
                count += 1
        return count

    def pids(self) -> list[int]:
        return tree_pids(self._process.pid) if self._process is not None else []

    def memory(self) -> Memory:
        return tree_memory(self.pids())

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._process is not None:
            stop_tree(self._process.pid)
            self._process.wait(timeout=5)
            self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Gateway(Service):
    """`python -m gateway serve` on a free port against the run's database, no demo workspace."""

    name = "gateway"

    def __init__(
        self, log_dir: Path, database_url: str, *, workers: int, extra: tuple[str, ...] = (), max_seconds: int = 1800
    ) -> None:
        super().__init__(log_dir, workers=workers, max_seconds=max_seconds)
        self._database_url = database_url
        self._data_dir = log_dir / f"gateway-{self.port}"
        self._extra = extra

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "gateway", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            "--database-url", self._database_url, "--data-dir", str(self._data_dir),
            "--demo-workspace", "false", "--log-level", "WARNING",
            "--pool-max", str(POOL_MAX), "--claim-limit", str(CLAIM_LIMIT),
            # The load generator is one client address driving thousands of people: measure
            # capacity, not the limits that would (rightly) refuse it, nor the per-address
            # connection cap (1,000 per worker), which held 2,000 of s3's 10,000 polls.
            "--rate-limits", "false", "--max-connections-per-ip", "0", *self._extra,
        ]

    def start(self, timeout_s: float = 90.0) -> None:
        super().start(timeout_s)
        deadline = time.monotonic() + timeout_s
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gateway not ready within {timeout_s:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        """/readyz says 200; a worker still starting may not answer in time (many workers, a busy machine)."""
        try:
            return fetch_json("GET", self.base_url + "/readyz")[0] == 200
        except OSError:
            return False

    def metric(self, name: str) -> float:
        """The sum of every sample of one metric family in /metrics (all workers)."""
        return sum(value for sample, value in self.metrics(name).items() if sample.partition("{")[0] == name)

    def metrics(self, *prefixes: str) -> dict[str, float]:
        """Samples of /metrics whose name starts with one of `prefixes`, as `name{labels}` -> value."""
        samples = {}
        for line in fetch_text(self.base_url + "/metrics", timeout_s=30).splitlines():
            if line.startswith(prefixes) and not line.startswith("#"):
                sample, _, value = line.rpartition(" ")
                samples[sample] = float(value)
        return samples


class CeilingServer(Service):
    """`python -m bench.ceiling_server`: the bare aiohttp + uvloop + orjson answer to compare against."""

    name = "ceiling"

    def __init__(self, log_dir: Path, *, workers: int, body: dict[str, object], max_seconds: int = 1800) -> None:
        super().__init__(log_dir, workers=workers, max_seconds=max_seconds)
        self._body = body

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.ceiling_server", "--port", str(self.port),
                "--workers", str(self.workers), "--body", json.dumps(self._body),
                "--max-seconds", str(self.max_seconds)]
