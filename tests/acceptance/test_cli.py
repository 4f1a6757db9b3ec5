"""The `mailslot` command in subprocesses, as an operator runs it: help, migrate, workspace, serve.

Every `serve` started here is stopped in the fixture's teardown (SIGTERM, then SIGKILL of the
whole process tree) and any embedded PostgreSQL it left behind is stopped too. Readiness is
polled against /healthz with a deadline; waits are on the process, never bare sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from yarl import URL

import storage
from gateway.config import SETTINGS
from gateway.core.identity import user_hash
from storage.migrate import list_migrations
from tests.helpers import wait_until

MAILSLOT = [sys.executable, "-m", "gateway"]
START_DEADLINE_S = 90.0  # a first embedded start runs initdb
STOP_DEADLINE_S = 30.0
DATABASE_VARIABLES = ["MAILSLOT_DATABASE_URL", "MAILSLOT_DATA_DIR"]

# No proxy from the environment between the tests and 127.0.0.1.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def cli_env(**variables: str) -> dict[str, str]:
    """The test's environment without any MAILSLOT_* setting, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSLOT_")}
    env.update(variables)
    return env


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAILSLOT, *args], cwd=cwd, env=env or cli_env(), capture_output=True, text=True, timeout=120
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with _HTTP.open(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def postgres_processes(pgdata: Path) -> list[int]:
    """Pids of server processes whose command line names this data folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(pgdata).encode() in cmdline and any(part.endswith(b"postgres") for part in cmdline[:1]):
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (spawned workers run in their own process groups)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Served:
    """One `mailslot serve` subprocess, its output in files (a full pipe would block it)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        name = uuid.uuid4().hex[:8]
        self._stdout = cwd / f"serve-{name}.out"
        self._stderr = cwd / f"serve-{name}.err"
        with self._stdout.open("w") as out, self._stderr.open("w") as err:
            self.process = subprocess.Popen([*MAILSLOT, "serve", *args], cwd=cwd, env=env, stdout=out, stderr=err)

    @property
    def stdout(self) -> str:
        return self._stdout.read_text()

    @property
    def stderr(self) -> str:
        return self._stderr.read_text()

    def wait_ready(self) -> None:
        """Poll /healthz until it answers 200; fail at once if the process exits."""
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.stdout}\n{self.stderr}")
            try:
                if http("GET", self.base + "/healthz")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            try:  # waits on the process: returns early if it dies
                self.process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
        pytest.fail(f"serve did not answer /healthz within {START_DEADLINE_S}s:\n{self.stdout}\n{self.stderr}")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=STOP_DEADLINE_S)

    def kill(self) -> None:
        """Teardown: a graceful stop if it still runs, then SIGKILL for anything left of the tree."""
        if self.process.poll() is not None:
            return
        tree = descendants(self.process.pid)
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Launcher:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.served: list[Served] = []
        self.data_dirs: set[Path] = set()

    def serve(self, *args: str, data_dir: Path | None = None, **variables: str) -> Served:
        """Start `mailslot serve` on a free port with these flags and MAILSLOT_* variables."""
        port = free_port()
        data_dir = data_dir or self.cwd / "data"
        self.data_dirs.add(data_dir)
        served = Served(["--port", str(port), "--data-dir", str(data_dir), *args], cli_env(**variables), self.cwd, port)
        self.served.append(served)
        served.wait_ready()
        return served

    def close(self) -> None:
        for served in self.served:
            served.kill()
        for data_dir in self.data_dirs:
            embedded = storage.EmbeddedPostgres(data_dir)
            if embedded.is_running():
                embedded.stop()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def empty_database_url(server_url: str) -> Iterator[str]:
    """A database with no tables at all, for the CLI to migrate."""
    name = "cli_" + uuid.uuid4().hex[:16]

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_async(execute(f"CREATE DATABASE {name}"))
    try:
        yield str(URL(server_url).with_path("/" + name))
    finally:
        run_async(execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def roundtrip(base: str, site_id: str, api_key: str, user: str = "ada", identity_secret: str | None = None) -> str:
    """Send through the server API, poll and report shown through the device API (with `user_hash`
    when an identity secret is given); the message id."""
    auth = {"Authorization": f"Bearer {api_key}"}
    status, sent = http("POST", base + "/v1/messages", {"to": {"id": user}, "content": {"title": "Hi"}}, auth)
    assert status == 201, sent
    device = {"site_id": site_id, "user": user, "device_id": "laptop"}
    if identity_secret is not None:
        device["user_hash"] = user_hash(identity_secret, user)
    status, polled = http("POST", base + "/v1/poll", device)
    assert status == 200, polled
    assert [m["id"] for m in polled["messages"]] == [sent["id"]]
    status, reported = http(
        "POST", base + "/v1/events", {**device, "events": [{"message_id": sent["id"], "type": "shown"}]}
    )
    assert (status, reported) == (200, {"accepted": 1, "rejected": []})
    status, read = http("GET", base + f"/v1/messages/{sent['id']}", headers=auth)
    assert (status, read["state"], read["device_id"]) == (200, "shown", "laptop")
    return str(sent["id"])


# --help


@pytest.mark.parametrize(
    ("command", "variables"),
    [
        (["serve"], [s.env for s in SETTINGS]),
        (["migrate"], DATABASE_VARIABLES),
        (["workspace", "create"], DATABASE_VARIABLES),
    ],
    ids=["serve", "migrate", "workspace-create"],
)
def test_help_names_the_variables(command: list[str], variables: list[str], tmp_path: Path) -> None:
    result = run_cli(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    missing = [name for name in variables if name not in result.stdout]
    assert missing == [], result.stdout


def test_the_console_script_lists_the_commands(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "mailslot"
    result = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "workspace"):
        assert command in result.stdout
    result = run_cli("workspace", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "create" in result.stdout


# Bad configuration


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAILSLOT_PORT", "abc"),
        ("MAILSLOT_PORT", "70000"),
        ("MAILSLOT_LOG_LEVEL", "loud"),
        ("MAILSLOT_DEMO_WORKSPACE", "maybe"),
        ("MAILSLOT_POOL_MAX", "-3"),
    ],
)
def test_a_bad_setting_stops_startup_naming_the_variable(variable: str, value: str, tmp_path: Path) -> None:
    result = run_cli("serve", cwd=tmp_path, env=cli_env(**{variable: value}))
    assert result.returncode != 0
    assert variable in result.stderr and value in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".mailslot").exists(), "nothing may start on a bad setting"


def test_a_bad_flag_stops_migrate(tmp_path: Path) -> None:
    result = run_cli("migrate", cwd=tmp_path, env=cli_env(MAILSLOT_LOG_LEVEL="chatty"))
    assert result.returncode != 0
    assert "MAILSLOT_LOG_LEVEL" in result.stderr and "chatty" in result.stderr


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://mailslot:wrong@127.0.0.1:{free_port()}/mailslot"
    result = run_cli("migrate", cwd=tmp_path, env=cli_env(MAILSLOT_DATABASE_URL=url))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "database" in result.stderr, result.stderr


# migrate


def test_migrate_applies_every_migration_once(empty_database_url: str, tmp_path: Path) -> None:
    env = cli_env(MAILSLOT_DATABASE_URL=empty_database_url)
    names = [m.name for m in list_migrations()]

    first = run_cli("migrate", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert f"applied {len(names)} migration" in first.stdout
    assert all(name in first.stdout for name in names), first.stdout

    second = run_cli("migrate", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "applied 0 migration" in second.stdout
    assert not any(name in second.stdout for name in names), second.stdout

    async def recorded() -> list[tuple[str, str]]:
        conn = await asyncpg.connect(empty_database_url)
        try:
            rows = await conn.fetch("SELECT name, checksum FROM schema_migrations ORDER BY name")
        finally:
            await conn.close()
        return [(r["name"], r["checksum"]) for r in rows]

    assert run_async(recorded()) == [(m.name, m.checksum) for m in list_migrations()]
    assert not (tmp_path / ".mailslot").exists(), "with a database URL no embedded server starts"


def test_an_after_deploy_migration_waits_for_its_flag(empty_database_url: str, tmp_path: Path) -> None:
    """On a database in use, `migrate` leaves an after-deploy file pending and says how to apply it."""
    env = cli_env(MAILSLOT_DATABASE_URL=empty_database_url)
    after = [m.name for m in list_migrations() if m.after_deploy]
    assert after, "no after-deploy migration shipped"
    assert run_cli("migrate", cwd=tmp_path, env=env).returncode == 0

    async def as_before_the_after_deploy_files() -> None:
        conn = await asyncpg.connect(empty_database_url)
        try:
            await conn.execute("DELETE FROM schema_migrations WHERE name = ANY($1::text[])", after)
            await conn.execute(
                "ALTER TABLE messages ADD CONSTRAINT messages_idempotency_key UNIQUE (workspace_id, idempotency_key)"
            )
            await conn.execute(next(m.sql for m in list_migrations() if m.name == "0027_claim_function.sql"))
        finally:
            await conn.close()

    run_async(as_before_the_after_deploy_files())
    held = run_cli("migrate", cwd=tmp_path, env=env)
    assert held.returncode == 0, held.stderr
    assert "applied 0 migration" in held.stdout, held.stdout
    assert all(name in held.stderr for name in after) and "--after-deploy" in held.stderr, held.stderr

    applied = run_cli("migrate", "--after-deploy", cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stderr
    assert f"applied {len(after)} migration" in applied.stdout and all(n in applied.stdout for n in after)
    again = run_cli("migrate", "--after-deploy", cwd=tmp_path, env=env)
    assert "applied 0 migration" in again.stdout, again.stdout


# workspace create


def test_workspace_create_prints_credentials_that_work(
    empty_database_url: str, tmp_path: Path, launch: Launcher
) -> None:
    env = cli_env(MAILSLOT_DATABASE_URL=empty_database_url)
    result = run_cli("workspace", "create", "acme", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1, result.stdout
    created = json.loads(result.stdout)
    for key in ("site_id", "api_key", "identity_secret"):
        assert isinstance(created[key], str) and created[key], created
    assert created["name"] == "acme"

    text = run_cli("workspace", "create", "globex", cwd=tmp_path, env=env)
    assert text.returncode == 0, text.stderr
    assert "site id" in text.stdout and "API key" in text.stdout
    assert created["api_key"] not in text.stdout

    served = launch.serve("--workers", "1", MAILSLOT_DATABASE_URL=empty_database_url, MAILSLOT_DEMO_WORKSPACE="false")
    status, workspace = http(
        "GET", served.base + "/v1/workspace", headers={"Authorization": f"Bearer {created['api_key']}"}
    )
    assert (status, workspace["name"], workspace["site_id"]) == (200, "acme", created["site_id"])
    status, error = http("GET", served.base + "/v1/workspace", headers={"Authorization": "Bearer not-a-key"})
    assert status == 401 and error["error"]["code"]
    # Safe by default: a device must prove who it polls as.
    assert workspace["identity_mode"] == "required"
    status, refused = http("POST", served.base + "/v1/poll", {"site_id": created["site_id"], "user": "ada",
                                                               "device_id": "laptop"})
    assert (status, refused["error"]["code"]) == (403, "identity_proof_required")
    roundtrip(served.base, created["site_id"], created["api_key"], identity_secret=created["identity_secret"])
    assert served.stop() == 0

    # `--identity-mode off` is for demos and load tests; a mode that does not exist is refused.
    off = run_cli("workspace", "create", "loadtest", "--json", "--identity-mode", "off", cwd=tmp_path, env=env)
    assert off.returncode == 0, off.stderr
    bad = run_cli("workspace", "create", "x", "--identity-mode", "sometimes", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "sometimes" in bad.stderr


def test_workspace_rotate_key_and_secret_keep_the_old_ones_for_the_grace(
    empty_database_url: str, tmp_path: Path, launch: Launcher
) -> None:
    env = cli_env(MAILSLOT_DATABASE_URL=empty_database_url)
    created = json.loads(run_cli("workspace", "create", "acme", "--json", cwd=tmp_path, env=env).stdout)
    served = launch.serve("--workers", "1", MAILSLOT_DATABASE_URL=empty_database_url, MAILSLOT_DEMO_WORKSPACE="false")

    def workspace(api_key: str) -> tuple[int, Any]:
        return http("GET", served.base + "/v1/workspace", headers={"Authorization": f"Bearer {api_key}"})

    assert workspace(created["api_key"])[0] == 200  # cached in the server from here on

    rotated = run_cli("workspace", "rotate-key", "acme", "--grace-s", "3600", "--json", cwd=tmp_path, env=env)
    assert rotated.returncode == 0, rotated.stderr
    new = json.loads(rotated.stdout)
    assert new["api_key"].startswith("msk_") and len(new["old_expire_at"]) == 1
    status, read = workspace(new["api_key"])
    assert status == 200 and [k["expires_at"] is None for k in read["api_keys"]] == [False, True]
    assert workspace(created["api_key"])[0] == 200, "the old key works during its grace"

    # No grace: the old key stops as soon as the server hears of the rotation (NOTIFY, or the cache's 5 s).
    again = run_cli("workspace", "rotate-key", "acme", "--grace-s", "0", "--json", cwd=tmp_path, env=env)
    newest = json.loads(again.stdout)["api_key"]
    run_async(wait_until(lambda: workspace(new["api_key"])[0] == 401, within=15, what="the old key is refused"))
    assert workspace(newest)[0] == 200

    text = run_cli("workspace", "rotate-secret", "acme", "--grace-s", "600", cwd=tmp_path, env=env)
    assert text.returncode == 0, text.stderr
    assert "new identity secret" in text.stdout and "old ones stop working at" in text.stdout
    status, read = workspace(newest)
    assert status == 200 and len(read["identity_secrets"]) == 2
    # The old secret's hash no longer proves anyone (the hash uses the newest secret); tokens
    # signed with it would, for 600 s.
    status, refused = http("POST", served.base + "/v1/poll", {
        "site_id": created["site_id"], "user": "ada", "device_id": "laptop",
        "user_hash": user_hash(created["identity_secret"], "ada"),
    })
    assert (status, refused["error"]["code"]) == (403, "identity_proof_failed")
    assert served.stop() == 0

    missing = run_cli("workspace", "rotate-secret", "nobody", "--grace-s", "0", cwd=tmp_path, env=env)
    assert missing.returncode == 1 and "no workspace named 'nobody'" in missing.stderr
    for bad in ("-1", "soon", str(30 * 86400 + 1)):
        refused_grace = run_cli("workspace", "rotate-key", "acme", "--grace-s", bad, cwd=tmp_path, env=env)
        assert refused_grace.returncode == 2 and "--grace-s" in refused_grace.stderr
    no_grace = run_cli("workspace", "rotate-key", "acme", cwd=tmp_path, env=env)
    assert no_grace.returncode == 2 and "--grace-s" in no_grace.stderr


# serve against a configured database


def test_console_link_prints_a_one_time_sign_in_link(empty_database_url: str, tmp_path: Path) -> None:
    env = cli_env(MAILSLOT_DATABASE_URL=empty_database_url)
    assert run_cli("workspace", "create", "acme", cwd=tmp_path, env=env).returncode == 0
    result = run_cli("console-link", "--workspace", "acme", "--port", "8099", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("http://127.0.0.1:8099/console/link#") and len(url.split("#")[1]) >= 40, url
    missing = run_cli("console-link", "--workspace", "nobody", cwd=tmp_path, env=env)
    assert missing.returncode == 1 and "no workspace named 'nobody'" in missing.stderr


@pytest.mark.parametrize(
    ("signum", "workers"), [(signal.SIGTERM, "1"), (signal.SIGINT, "2")], ids=["sigterm-1-worker", "sigint-2-workers"]
)
def test_serve_answers_and_stops_on_a_signal(
    signum: int, workers: str, empty_database_url: str, tmp_path: Path, launch: Launcher
) -> None:
    served = launch.serve("--database-url", empty_database_url, "--workers", workers)
    assert http("GET", served.base + "/healthz") == (200, {"status": "ok"})
    assert http("GET", served.base + "/readyz") == (200, {"status": "ready"})

    # serve migrated the empty database and created the demo workspace on first start.
    demo = json.loads((tmp_path / "data" / "demo-workspace.json").read_text())
    assert demo["site_id"] in served.stdout and demo["api_key"] in served.stdout
    assert f"{served.base}/console/link#" in served.stdout  # the console's sign-in link, on every start
    roundtrip(served.base, demo["site_id"], demo["api_key"])

    assert served.stop(signum) == 0, served.stderr
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        http("GET", served.base + "/healthz")
    assert not (tmp_path / "data" / "postgres").exists(), "with a database URL no embedded server starts"


# serve with the embedded PostgreSQL


def test_serve_runs_its_own_postgres_and_leaves_none_behind(embedded_data_dir: Path, launch: Launcher) -> None:
    data_dir = embedded_data_dir
    pgdata = data_dir / "postgres"
    served = launch.serve("--workers", "1", data_dir=data_dir)
    assert http("GET", served.base + "/readyz") == (200, {"status": "ready"})

    # First start: the demo workspace's credentials are printed and kept, readable by the owner only.
    saved = data_dir / "demo-workspace.json"
    demo = json.loads(saved.read_text())
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert "Demo workspace created" in served.stdout
    for key in ("site_id", "api_key", "identity_secret"):
        assert demo[key] in served.stdout
    message_id = roundtrip(served.base, demo["site_id"], demo["api_key"])

    # The server listens on 127.0.0.1 only, with the random passwords kept in the data folder:
    # the superuser's, and that of the role the gateway connects as, which is no superuser.
    password_file = data_dir / "postgres.password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "mailslot.password").stat().st_mode) == 0o600
    assert "superuser" not in served.stdout + served.stderr
    port = int((pgdata / "postmaster.pid").read_text().splitlines()[3])

    async def listen_addresses() -> str:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            password=password_file.read_text().strip(),
            database="mailslot",
        )
        try:
            return str(await conn.fetchval("SHOW listen_addresses"))
        finally:
            await conn.close()

    assert run_async(listen_addresses()) == "127.0.0.1"

    assert served.stop(signal.SIGTERM) == 0, served.stderr
    assert not (pgdata / "postmaster.pid").exists()
    assert postgres_processes(pgdata) == []

    # Second start on the same folder: same data, no new demo workspace.
    again = launch.serve("--workers", "1", data_dir=data_dir)
    assert "Demo workspace created" not in again.stdout
    assert json.loads(saved.read_text()) == demo
    status, read = http(
        "GET", again.base + f"/v1/messages/{message_id}", headers={"Authorization": f"Bearer {demo['api_key']}"}
    )
    assert (status, read["state"]) == (200, "shown")
    assert again.stop(signal.SIGINT) == 0, again.stderr
    assert not (pgdata / "postmaster.pid").exists()
    assert postgres_processes(pgdata) == []
