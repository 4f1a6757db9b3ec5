"""The processes a fault case controls: its own PostgreSQL, `mailslot serve` instances, HAProxy.

Rules: every process is started here and stopped (or killed, with its whole tree) by the
fixture that asked for it, however the case ends; a paused PostgreSQL is always resumed first.
Every wait has a deadline and fails the case with the process's log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

import storage
from storage.embedded import APP_ROLE
from tests.acceptance.test_cli import MAILSLOT, cli_env, descendants, free_port

REPO = Path(__file__).resolve().parents[2]
HAPROXY_CONFIG = REPO / "deploy" / "haproxy.cfg"
START_BOUND_S = 60.0
STOP_BOUND_S = 30.0
SHUTDOWN_TIMEOUT_S = 5.0

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def until(condition: Callable[[], bool], what: str, within: float, log: Callable[[], str] = str) -> None:
    """Block until `condition` holds; fail the case with `log()` after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}\n{log()[-6000:]}")
        time.sleep(0.05)


def status_of(url: str) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with _HTTP.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class Postgres:
    """A dedicated embedded PostgreSQL the case may restart, pause and resume."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.embedded = storage.EmbeddedPostgres(folder, durable=False)
        self.url = self.embedded.start()
        self.paused: list[int] = []

    def database(self, name: str) -> str:
        """A fresh, empty database on this server (serve migrates it)."""
        # Created by the superuser and owned by the gateway's role, which cannot create databases.
        subprocess.run(
            [self.embedded._bin("psql"), self.embedded.admin_dsn(), "-v", "ON_ERROR_STOP=1", "-qc",
             f"CREATE DATABASE {name} OWNER {APP_ROLE}"],
            check=True, capture_output=True, timeout=60,
        )
        return self.url.rsplit("/", 1)[0] + "/" + name

    def postmaster(self) -> int:
        return int((self.embedded.pgdata / "postmaster.pid").read_text().splitlines()[0])

    def restart_fast(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server is back on the same port."""
        # EmbeddedPostgres has no restart of its own; its runner drops to the server's user under root.
        self.embedded._run([
            self.embedded._bin("pg_ctl"), "-D", str(self.embedded.pgdata), "-l",
            str(self.embedded.pgdata / "server.log"), "-m", "fast", "-w", "-t", "60", "restart",
        ])

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: the database hangs, no connection is refused."""
        main = self.postmaster()
        for pid in [main, *descendants(main)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                self.paused.append(pid)

    def resume(self) -> None:
        for pid in self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused.clear()

    def stop(self) -> None:
        self.resume()
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.embedded.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Gateway:
    """One `mailslot serve --workers 2` against the case's database; its output in a file."""

    def __init__(self, folder: Path, database_url: str, *, workers: int = 2, port: int | None = None) -> None:
        self.folder = folder
        self.database_url = database_url
        self.workers_wanted = workers
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.tree: set[int] = set()

    def start(self) -> None:
        env = cli_env(
            MAILSLOT_DATABASE_URL=self.database_url, MAILSLOT_DEMO_WORKSPACE="false", PYTHONUNBUFFERED="1",
            # One client address plays hundreds of devices: measure faults, not the per-address limits.
            MAILSLOT_RATE_LIMITS="false", MAILSLOT_MAX_CONNECTIONS_PER_IP="0",
            MAILSLOT_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S), MAILSLOT_POOL_MAX="8",
            MAILSLOT_TRUSTED_PROXIES="127.0.0.1",
        )
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*MAILSLOT, "serve", "--port", str(self.port), "--workers", str(self.workers_wanted),
                 "--data-dir", str(self.folder / f"data-{self.port}")],
                cwd=self.folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.wait_ready()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def workers(self) -> list[int]:
        assert self.process is not None
        found = descendants(self.process.pid)
        self.tree.update(found)
        return [pid for pid in found if b"spawn_main" in _cmdline(pid) and _alive(pid)]

    def wait_ready(self) -> None:
        """Until `workers_wanted` workers run and `/readyz` answers 200."""

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}\n{self.output()[-6000:]}")
            return len(self.workers()) == self.workers_wanted and status_of(self.base + "/readyz") == 200

        until(ready, f"serve on {self.port} is ready", START_BOUND_S, self.output)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> int:
        """SIGTERM and wait for the supervisor's exit code."""
        assert self.process is not None
        self.workers()
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not stop within {STOP_BOUND_S} s\n{self.output()[-6000:]}")

    def kill(self) -> None:
        """A graceful stop if it still runs, then SIGKILL to whatever of its tree is left."""
        if self.process is None:
            return
        self.workers()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_BOUND_S)
        for pid in [*self.tree, self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class HAProxy:
    """deploy/haproxy.cfg in front of two gateways, on a free loopback port."""

    def __init__(self, folder: Path, backends: list[Gateway]) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            pytest.fail("haproxy is not installed: `make faults` installs it as root; or apt-get install haproxy")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = folder / "haproxy.log"
        env = {
            **os.environ, "MAILSLOT_LB_BIND": f"127.0.0.1:{self.port}",
            "MAILSLOT_A": f"127.0.0.1:{backends[0].port}", "MAILSLOT_B": f"127.0.0.1:{backends[1].port}",
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(HAPROXY_CONFIG)], env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"haproxy exited with {self.process.returncode}\n{self.log.read_text(errors='replace')}")
            return status_of(self.base + "/readyz") == 200

        until(ready, "haproxy answers /readyz", START_BOUND_S, lambda: self.log.read_text(errors="replace"))

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class Fleet:
    """The gateways of one case, started on demand; every process tree they made is killed at the end."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.folder = folder
        self.database_url = database_url
        self.gateways: list[Gateway] = []

    def start(self, **options: int) -> Gateway:
        gateway = Gateway(self.folder, self.database_url, **options)
        self.gateways.append(gateway)
        gateway.start()
        return gateway

    def kill(self) -> None:
        for gateway in self.gateways:
            gateway.kill()
