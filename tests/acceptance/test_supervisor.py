"""The `mailslot serve` supervisor in subprocesses: stop signals at any moment, escalation,
restarts limited by a rate, the port owned by one server, reload without a refused connection,
and slow clients closed without hurting /healthz.

Every server runs against a scratch database (MAILSLOT_DATABASE_URL), so no test waits for an
embedded PostgreSQL, except the one that checks it is stopped. Each wait has a deadline; every
process tree is killed at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

import storage
from gateway.core.poll import SHUTDOWN_POLL_S
from tests.acceptance.test_cli import (
    MAILSLOT,
    cli_env,
    descendants,
    free_port,
    postgres_processes,
    run_cli,
)
from tests.helpers import Api, wait_until

SHUTDOWN_TIMEOUT_S = 2.0
# serve's KILL_GRACE_S is 3 s; this adds the supervisor's own exit.
STOP_BOUND_S = SHUTDOWN_TIMEOUT_S + 3.0 + 5.0
START_BOUND_S = 60.0


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Spawn serve as a shell starts a foreground command: with SIGINT at its default.

    A test run as a background job of a script (`make test &`, a CI runner's `cmd &`) ignores
    SIGINT, and an ignored signal stays ignored across exec: serve would then ignore a SIGINT
    that lands before its own handlers are in, and the at-spawn cases would fail for a reason
    that is the runner's, not serve's. A caught signal is reset to its default by exec.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


class Server:
    """One `mailslot serve` subprocess; its combined output in a file."""

    def __init__(self, cwd: Path, database_url: str, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = cwd / f"data-{self.port}"
        self.log = cwd / f"serve-{self.port}.log"
        env = cli_env(MAILSLOT_DATABASE_URL=database_url, MAILSLOT_DEMO_WORKSPACE="false",
                      MAILSLOT_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S), PYTHONUNBUFFERED="1")
        with self.log.open("wb") as out, _sigint_not_ignored():
            self.process = subprocess.Popen(
                [*MAILSLOT, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir), *args],
                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.tree: set[int] = set()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> list[int]:
        found = descendants(self.process.pid)
        self.tree.update(found)
        return [pid for pid in found if b"spawn_main" in _cmdline(pid)]

    def until(self, condition: Callable[[], bool], what: str, within: float = START_BOUND_S) -> None:
        """Wait for `condition` on this server; fail at once if the supervisor exits meanwhile."""
        deadline = time.monotonic() + within
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode} before: {what}\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"not within {within}s: {what}\n{self.output()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.02)

    def logged(self, text: str, count: int = 1) -> bool:
        return self.output().count(text) >= count

    def ready(self) -> None:
        self.until(lambda: self.logged("serving on", int(self.workers_wanted)), "every worker serves")

    workers_wanted = 1

    def exit_code(self, within: float = STOP_BOUND_S) -> int:
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not exit within {within}s:\n{self.output()}")

    def assert_nothing_left(self) -> None:
        """No process of the tree runs (the resource tracker may take a moment to see EOF)."""
        deadline = time.monotonic() + 5
        while alive := [pid for pid in self.tree if _cmdline(pid) and _state(pid) != "Z"]:
            assert time.monotonic() < deadline, f"processes left behind: {alive}\n{self.output()}"
            time.sleep(0.05)

    def kill(self) -> None:
        self.workers()
        for pid in [*self.tree, self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture
def start(tmp_path: Path, database_url: str) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(*args: str, workers: int = 1, port: int | None = None) -> Server:
        server = Server(tmp_path, database_url, "--workers", str(workers), *args, port=port)
        server.workers_wanted = workers
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


def healthz(base: str) -> int:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(base + "/healthz", timeout=5) as response:
        return int(response.status)


# Stop signals at any moment


MOMENTS = {
    "at-spawn": None,
    "workers-spawned": "started 2 workers",
    "workers-importing": "started 2 workers+",
    "first-worker-serving": "serving on",
}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
@pytest.mark.parametrize("moment", list(MOMENTS), ids=list(MOMENTS))
def test_a_stop_signal_at_any_moment_of_start_up_stops_everything(
    signum: int, moment: str, start: Callable[..., Server]
) -> None:
    server = start(workers=2)
    marker = MOMENTS[moment]
    if marker is not None:
        text = marker.rstrip("+")
        server.until(lambda: server.logged(text), f"log shows {text!r}")
        if marker.endswith("+"):  # the workers exist and are importing: signal them mid-start
            server.until(lambda: len(server.workers()) == 2, "two workers spawned")
    server.workers()
    server.process.send_signal(signum)
    code = server.exit_code()
    server.assert_nothing_left()
    if marker is None and code != 0:
        # The signal landed before serve's code installed its handlers: either the signal's default
        # action ended the interpreter, or SIGINT raised KeyboardInterrupt while `site` was still
        # importing ("Fatal Python error: init_import_site", exit 1). Nothing had started either way,
        # and assert_nothing_left() above has checked that nothing was left behind.
        output = server.output()
        assert code == -signum or (signum == signal.SIGINT and "KeyboardInterrupt" in output), output
        assert "serving on" not in output, output
        return
    assert code == 0, server.output()
    assert "Traceback" not in server.output(), server.output()
    with pytest.raises(OSError):
        healthz(server.base)


def test_a_stop_signal_during_start_up_stops_the_embedded_postgres(tmp_path: Path, embedded_data_dir: Path) -> None:
    data_dir = embedded_data_dir
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*MAILSLOT, "serve", "--port", str(port), "--data-dir", str(data_dir), "--workers", "1"],
            cwd=tmp_path, env=cli_env(PYTHONUNBUFFERED="1"), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_BOUND_S
        while "embedded PostgreSQL under" not in log.read_text() and time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert postgres_processes(data_dir / "postgres") == [], log.read_text()
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_second_signal_kills_workers_that_do_not_stop(start: Callable[..., Server]) -> None:
    server = start("--shutdown-timeout-s", "60", workers=2)
    server.ready()
    stuck = server.workers()[0]
    os.kill(stuck, signal.SIGSTOP)  # a worker that cannot react to SIGTERM
    server.process.send_signal(signal.SIGTERM)
    server.until(lambda: len(server.workers()) == 1, "the healthy worker stopped", within=STOP_BOUND_S)
    server.process.send_signal(signal.SIGINT)
    assert server.exit_code(within=10) == 0, server.output()
    server.assert_nothing_left()
    assert "second stop signal" in server.output()


def test_the_shutdown_timeout_passing_kills_workers_that_do_not_stop(start: Callable[..., Server]) -> None:
    server = start("--shutdown-timeout-s", "1", workers=1)
    server.ready()
    os.kill(server.workers()[0], signal.SIGSTOP)
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.exit_code(within=1 + 3 + 5) == 0, server.output()
    assert time.monotonic() - began >= 1
    server.assert_nothing_left()
    assert "did not stop in time" in server.output()


# Restarts


def test_deaths_spread_over_time_never_stop_the_server(start: Callable[..., Server]) -> None:
    window = 0.5
    server = start("--restart-window-s", str(window), "--restart-limit", "1", workers=1)
    server.ready()
    for death in range(1, 6):
        [worker] = server.workers()
        os.kill(worker, signal.SIGKILL)
        server.until(lambda n=1 + death: server.logged("serving on", n), f"worker restarted after death {death}")
        assert healthz(server.base) == 200
        time.sleep(window)  # the deaths are spread: each one outside the previous one's window
    assert server.process.poll() is None
    server.process.send_signal(signal.SIGTERM)
    assert server.exit_code() == 0, server.output()


def test_deaths_faster_than_the_limit_stop_the_server_with_an_error(start: Callable[..., Server]) -> None:
    server = start("--restart-window-s", "60", "--restart-limit", "2", workers=1)
    server.ready()
    killed: set[int] = set()
    for death in range(3):
        server.until(lambda: bool(set(server.workers()) - killed), f"a new worker after {death} deaths")
        [worker] = server.workers()
        killed.add(worker)
        os.kill(worker, signal.SIGKILL)
    assert server.exit_code() == 1, server.output()
    assert "3 failures within 60 s; stopping" in server.output()
    server.assert_nothing_left()


# The port


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "so-reuseport"])
def test_a_port_held_by_another_program_is_one_clear_error(reuse_port: bool, tmp_path: Path, database_url: str) -> None:
    with socket.socket() as other:
        if reuse_port:  # as an older mailslot's workers did
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), cwd=tmp_path,
                         env=cli_env(MAILSLOT_DATABASE_URL=database_url))
    assert result.returncode == 1, result
    assert f"port {port}" in result.stderr and "MAILSLOT_PORT" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert "restarting" not in result.stderr + result.stdout


def test_a_second_mailslot_on_the_same_port_is_one_clear_error(
    start: Callable[..., Server], tmp_path: Path, database_url: str
) -> None:
    first = start(workers=2)
    first.ready()
    result = run_cli("serve", "--port", str(first.port), "--data-dir", str(tmp_path / "other"), cwd=tmp_path,
                     env=cli_env(MAILSLOT_DATABASE_URL=database_url))
    assert result.returncode == 1, result
    assert f"port {first.port}" in result.stderr and "MAILSLOT_PORT" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert healthz(first.base) == 200


# Reload


async def test_a_reload_refuses_no_connection_and_answers_held_polls_at_once(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    server = start(workers=2)
    server.ready()
    old = set(server.workers())
    errors: list[str] = []
    answered = 0
    done = asyncio.Event()

    async def client_loop(session: aiohttp.ClientSession) -> None:
        nonlocal answered
        while not done.is_set():
            try:
                async with session.get(server.base + "/healthz") as response:
                    body = await response.json()
                    if response.status != 200 or body != {"status": "ok"}:
                        errors.append(f"{response.status} {body}")
                    answered += 1
            except (aiohttp.ClientError, ValueError) as exc:
                errors.append(repr(exc))

    # A fresh connection for every request: a refused connection shows up as an error.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        loops = [asyncio.create_task(client_loop(session)) for _ in range(4)]
        result = run_cli("reload", "--data-dir", str(server.data_dir), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        await asyncio.to_thread(server.until, lambda: server.logged("draining 2 old ones"), "the reload completes")
        await asyncio.to_thread(server.until, lambda: not (old & set(server.workers())), "the old workers exit")
        done.set()
        await asyncio.gather(*loops)
    assert errors == [], errors[:10]
    assert answered > 0
    assert len(set(server.workers()) - old) == 2
    assert healthz(server.base) == 200
    server.process.send_signal(signal.SIGTERM)
    assert server.exit_code() == 0, server.output()


async def test_a_reload_answers_held_polls_at_once_with_a_short_next_poll(
    start: Callable[..., Server], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    credentials = await storage.create_workspace(pool, "acme", identity_mode="off")
    server = start(workers=1)
    server.ready()
    async with aiohttp.ClientSession(base_url=server.base) as session:
        api = Api(session, credentials)  # type: ignore[arg-type]  # the same request() as a TestClient
        held = [api.hold(f"user-{i}", "phone", wait=20) for i in range(5)]
        await wait_until(lambda: _equals(api.metric("mailslot_parked_polls"), 5), what="5 parked polls")
        result = await asyncio.to_thread(run_cli, "reload", "--data-dir", str(server.data_dir), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        replies = await asyncio.wait_for(asyncio.gather(*held), 15)
    low, high = SHUTDOWN_POLL_S
    for reply in replies:
        assert reply.status == 200, reply
        assert reply.body["messages"] == [] and low <= reply.body["next_poll_s"] <= high, reply


async def _equals(value: Awaitable[float], expected: float) -> bool:
    return await value == expected


def test_reload_without_a_running_server_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("reload", "--data-dir", str(tmp_path / "nothing"), cwd=tmp_path)
    assert result.returncode == 1
    assert "no running server" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / "mailslot.pid").write_text(f"{os.getpid()}\n")  # pytest, not a serve
    result = run_cli("reload", "--data-dir", str(tmp_path / "stale"), cwd=tmp_path)
    assert result.returncode == 1 and "not a running `mailslot serve`" in result.stderr, result.stderr


# Slow and greedy clients


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


def test_slow_clients_are_closed_and_healthz_stays_up(start: Callable[..., Server]) -> None:
    server = start("--header-timeout-s", "1", "--body-timeout-s", "1", workers=1)
    server.ready()
    trickling: list[socket.socket] = []
    try:
        for i in range(300):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            if i % 3 == 0:  # headers that never end
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")
            elif i % 3 == 1:  # a declared body (small enough) that never arrives in full
                sock.sendall(b"POST /v1/poll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{\"site_id\": ")
            sock.setblocking(False)
            trickling.append(sock)
        assert healthz(server.base) == 200
        # A declared body over the limit is refused before any of it arrives.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as big:
            big.sendall(b"POST /v1/poll HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
            assert big.recv(1024).startswith(b"HTTP/1.1 413"), "a 100 MB body is refused at once"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for sock in trickling[:]:
                with contextlib.suppress(OSError):
                    sock.send(b"a")  # one more byte now and then, as a slowloris does
                if _closed_by_server(sock):
                    trickling.remove(sock)
                    sock.close()
            if not trickling:
                break
            assert healthz(server.base) == 200
            time.sleep(0.2)
        assert trickling == [], f"{len(trickling)} slow sockets still open"
    finally:
        for sock in trickling:
            sock.close()
    metrics = _metrics(server.base)
    assert 'mailslot_closed_connections_total{reason="header_timeout"}' in metrics, metrics
    assert 'mailslot_closed_connections_total{reason="body_timeout"}' in metrics, metrics
    assert "mailslot_open_files_limit" in metrics


def test_connections_over_the_cap_per_address_are_closed(start: Callable[..., Server]) -> None:
    server = start("--max-connections-per-ip", "20", workers=1)
    server.ready()
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(30)]
    try:
        for sock in socks:
            sock.setblocking(False)
        deadline = time.monotonic() + 10
        closed: list[socket.socket] = []
        while len(closed) < 10 and time.monotonic() < deadline:
            closed = [sock for sock in socks if _closed_by_server(sock)]
            time.sleep(0.05)
        assert len(closed) == 10, len(closed)
        for sock in closed:
            sock.close()
            socks.remove(sock)
        # The rest still serve; once they are gone, the address may connect again.
        socks[0].setblocking(True)
        socks[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert socks[0].recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        for sock in socks:
            sock.close()
    server.until(lambda: _healthz_ok(server.base), "new connections accepted once the others closed", within=10)
    assert 'mailslot_closed_connections_total{reason="per_ip_limit"} 10.0' in _metrics(server.base)


async def test_a_held_poll_outlives_the_keep_alive_timeout_and_the_idle_connection_then_closes(
    start: Callable[..., Server], pool: asyncpg.Pool
) -> None:
    """The keep-alive timer is off while a request runs (a held poll keeps no timer) and armed again
    after the answer: the idle connection is still closed."""
    credentials = await storage.create_workspace(pool, "acme", identity_mode="off")
    server = start("--keepalive-timeout-s", "1", "--max-wait-s", "3", workers=1)
    await asyncio.to_thread(server.ready)
    body = f'{{"site_id": "{credentials.workspace.site_id}", "user": "ada", "device_id": "phone", "wait": 3}}'.encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"POST /v1/poll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        answer = await reader.readexactly(length)
        assert b'"messages":[]' in answer, answer
        # Idle now: the server closes the connection (EOF) once its keep-alive timeout passes.
        assert await asyncio.wait_for(reader.read(1), 15) == b""
    finally:
        writer.close()


def _healthz_ok(base: str) -> bool:
    try:
        return healthz(base) == 200
    except OSError:
        return False


def _metrics(base: str) -> str:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(base + "/metrics", timeout=5) as response:
        return str(response.read().decode())
