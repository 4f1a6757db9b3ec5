"""The drill's Patroni cluster, driven through deploy/local-cluster exactly as an operator would.

Rules: the set is brought up once per module on a free block of loopback ports and torn down by
the script (PIDs in postmaster.pid), however the module ends; every wait has a deadline and
fails the case with the cluster's view and logs.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "local-cluster"
UP_BOUND_S = 180.0
PORTS_PER_SET = 50  # etcd, nodes, Patroni, HAProxy and gateways all sit within base .. base + 49


def _free_block() -> int:
    """A base port whose whole block is free now (other sessions on this machine run suites too)."""
    for _ in range(50):
        base = random.randrange(20000, 60000, 100)
        with_all = []
        try:
            for port in range(base, base + PORTS_PER_SET):
                sock = socket.socket()
                with_all.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in with_all:
                sock.close()
        return base
    pytest.fail("no free block of loopback ports for the cluster")


class Cluster:
    """`deploy/local-cluster` for one module: up, the faults, and down."""

    def __init__(self) -> None:
        missing = [name for name in ("etcd", "patroni", "haproxy") if not shutil.which(name)
                   and not Path(f"/usr/sbin/{name}").exists()]
        if missing:
            pytest.fail(f"missing {', '.join(missing)}: `make failover` installs them as root "
                        f"(apt-get install etcd-server patroni haproxy)")
        # Not under pytest's tmp_path, which prunes folders a concurrent session may still use;
        # under root the cluster's own user must reach it (the script chowns what it creates).
        self.folder = Path(tempfile.mkdtemp(prefix="mailslot-failover-"))
        self.folder.chmod(0o711)
        self.dir = self.folder / "cluster"
        self.base = _free_block()
        try:
            self.run("up", "--nodes", "2", "--gateways", "0", "--base-port", str(self.base), timeout=UP_BOUND_S)
            self.env: dict[str, Any] = json.loads(self.run("env"))
        except BaseException:
            self.down()  # the fixture's teardown never runs for a constructor that failed
            raise

    def run(self, *args: str, timeout: float = 90.0) -> str:
        result = subprocess.run([sys.executable, str(SCRIPT), "--dir", str(self.dir), *args],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            pytest.fail(f"local-cluster {' '.join(args)} failed ({result.returncode}):\n"
                        f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
        return result.stdout

    def members(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.run("status"))
        return found

    def leader(self) -> str | None:
        return next((m["name"] for m in self.members() if m["role"] == "leader" and m["state"] == "running"), None)

    def wait_healthy(self) -> str:
        """Until one leader runs and the other node is its synchronous standby; the leader's name."""
        return self.run("wait-healthy", "--within", "120", timeout=150).strip()

    def wait_new_leader(self, old: str, within: float = 90.0) -> float:
        """Seconds until a node other than `old` is the running leader."""
        started = time.monotonic()
        while self.leader() in (None, old):
            if time.monotonic() - started > within:
                pytest.fail(f"no new primary within {within} s: {self.members()}\n{self.logs()}")
            time.sleep(0.2)
        return time.monotonic() - started

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted((self.dir / "logs").glob("*.log")))

    def down(self) -> None:
        subprocess.run([sys.executable, str(SCRIPT), "--dir", str(self.dir), "down"], capture_output=True,
                       timeout=120)
        shutil.rmtree(self.folder, ignore_errors=True)
