"""`mailslot serve`: own the port, bring the database up, run and supervise the workers.

The `serve` process is always a supervisor, with one worker or many (docs/decisions/0015):

- It binds the listening socket(s) itself, before anything else starts, without SO_REUSEPORT,
  so a port in use (by anything, another mailslot included) is one clear error; every spawned
  worker accepts on that same socket, so the port never stops listening while workers come
  and go (a restart or a reload refuses no connection: they wait in the backlog).
- It restarts a worker that dies, with backoff, and gives up only when more than
  `restart_limit` workers fail within `restart_window_s`: a rare crash never adds up.
- SIGHUP (`mailslot reload`) starts a new set of workers and, once all of them serve, drains
  the old ones (their held polls are answered at once with a short `next_poll_s`).
- SIGTERM/SIGINT at any moment stops everything: workers get `shutdown_timeout_s` (plus a
  short grace) and are then killed; a second signal kills them at once. Every path leaves
  through `storage.migrated_database`, which stops an embedded PostgreSQL it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from prometheus_client import multiprocess

import storage

from .config import Config
from .core.console import create_link
from .core.demo import DEMO_WORKSPACE, create_demo_workspace
from .credentials import credentials_dict, save_credentials
from .http.app import create_app
from .http.connections import CONNECTIONS, ConnectionGuard, connection_limit
from .http.keys import METRICS, STOPPING
from .http.sites import GuardedSockSite
from .logs import configure_logging

__all__ = ["PID_FILE", "SUPERUSER_WARNING", "ServeError", "bind", "raise_open_files_limit", "run_worker", "serve"]

log = logging.getLogger("mailslot")

# Clients reconnect in bursts after a restart; a short backlog drops their SYNs.
LISTEN_BACKLOG = 4096
GC_THRESHOLD = 50_000
# How long a stopping worker waits, no longer accepting, for just-accepted connections' requests.
ACCEPTED_GRACE_S = 0.5
# After shutdown_timeout_s a worker still has to close its pool and listener.
KILL_GRACE_S = 3.0
# New workers of a reload must serve within this, or the reload is abandoned.
RELOAD_READY_S = 60.0
MAX_BACKOFF_S = 10.0
# The supervisor's pid, for `mailslot reload`; in the data folder.
PID_FILE = "mailslot.pid"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SUPERUSER_WARNING = (
    "the database URL connects as a PostgreSQL superuser: a flaw in the gateway would then reach every "
    "database of the server, and its files. Connect as a role that owns only mailslot's database "
    "(no SUPERUSER, CREATEDB or CREATEROLE); see docs/operations.md, \"Using your own PostgreSQL\""
)


class ServeError(Exception):
    """The server cannot start for a reason the operator must fix; the message says how."""


def serve(config: Config) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    with _signals() as signals:
        raise_open_files_limit()
        try:
            sockets = bind(config.host, config.port)
        except ServeError as exc:
            print(f"mailslot: {exc}", file=sys.stderr)
            return 1
        try:
            with storage.migrated_database(config.database_url, config.data_dir) as database:
                if database.superuser:
                    log.warning(SUPERUSER_WARNING)
                if signals.stop_requested():
                    return 0
                if config.demo_workspace:
                    asyncio.run(_ensure_demo_workspace(config, database.url))
                if signals.stop_requested():
                    return 0
                workers = config.workers or os.cpu_count() or 1
                config = dataclasses.replace(config, database_url=database.url, workers=workers)
                with _pid_file(config.data_dir / PID_FILE):
                    return _Supervisor(config, sockets, signals).run()
        finally:
            for sock in sockets:
                sock.close()


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address of `host`; a port in use is a ServeError naming the setting."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on host {host!r}: {exc.strerror}; change MAILSLOT_HOST or --host") from None
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if address in seen:
                continue
            seen.add(address)
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # SO_REUSEADDR only skips TIME_WAIT; without SO_REUSEPORT no other listener may share the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise ServeError(_bind_error(exc, str(address[0]), port)) from None
            sock.listen(LISTEN_BACKLOG)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind_error(exc: OSError, address: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {address} is already in use (by another program or another mailslot); "
                "stop it, or choose another port with MAILSLOT_PORT or --port")
    if exc.errno == errno.EACCES:
        return (f"not allowed to listen on port {port} on {address}; "
                "choose a port above 1023 with MAILSLOT_PORT or --port")
    return (f"cannot listen on {address} port {port}: {exc.strerror}; "
            "check MAILSLOT_HOST/--host and MAILSLOT_PORT/--port")


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit: every held poll is a file descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# Signals


class _Signals:
    """Signals as bytes on a pipe (signal.set_wakeup_fd): the supervisor's loop waits on it.

    Handlers do nothing else, so a signal never interrupts start-up half-way (the embedded
    PostgreSQL starting, a migration); start-up checks `stop_requested` after each step.
    """

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._pending: deque[int] = deque()

    def read(self) -> list[int]:
        """The signals received since the last call, in order."""
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self.read_fd, 64):
                self._pending.extend(data)
        received = list(self._pending)
        self._pending.clear()
        return received

    def stop_requested(self) -> bool:
        """During start-up: was a stop signal received? (A SIGHUP then is moot: nothing runs yet.)"""
        received = [signum for signum in self.read() if signum in _STOP_SIGNALS]
        self._pending.extend(received)
        return bool(received)

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self._write_fd)


@contextlib.contextmanager
def _signals() -> Iterator[_Signals]:
    signals = _Signals()
    # The wakeup fd before the handlers: a signal taken by `_ignore` before the fd was set would
    # write no byte, and be lost. Any signal from here on writes one; one that arrives before a
    # handler is swapped still meets Python's default (SIGINT raises KeyboardInterrupt).
    previous_fd = signal.set_wakeup_fd(signals._write_fd, warn_on_full_buffer=False)
    previous: dict[int, Any] = {}
    try:
        for handled in (*_STOP_SIGNALS, signal.SIGHUP):
            previous[handled] = signal.signal(handled, _ignore)
        yield signals
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_fd)
        signals.close()


def _ignore(_signum: int, _frame: object) -> None:
    """A Python-level handler, so the C handler writes the signal to the wakeup pipe."""


@contextlib.contextmanager
def _pid_file(path: Path) -> Iterator[None]:
    """Where `mailslot reload` finds this supervisor; removed at exit if it is still ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()


# The supervisor


@dataclasses.dataclass(eq=False)
class _Worker:
    process: BaseProcess
    generation: int
    # A socket pair to the worker: it sends its pid once it serves; it sees EOF if we die.
    link: Connection
    serving: bool = False
    silent: bool = False  # the link hit EOF: the worker is exiting
    stopped: bool = False  # told to stop: its exit is no failure
    kill_at: float | None = None  # when a stopped worker that is still running gets SIGKILL


class _Supervisor:
    def __init__(self, config: Config, sockets: list[socket.socket], signals: _Signals) -> None:
        self.config = config
        self.sockets = sockets
        self.signals = signals
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self.generation = 0
        self.reload_deadline: float | None = None  # while a reload waits for its new workers
        self.restarts: list[float] = []  # due times of restarts waiting out their backoff
        self.failures: deque[float] = deque()
        self.stopping = False
        self.exit_code = 0

    def run(self) -> int:
        metrics_dir = self._metrics_dir()
        for _ in range(self.config.workers):
            self._start()
        log.info("started %d workers on http://%s:%d", self.config.workers, self.config.host, self.config.port)
        try:
            while self.workers or (self.restarts and not self.stopping):
                self._step()
        finally:
            for worker in self.workers:  # only after an unexpected error in the loop itself
                _kill(worker.process)
                worker.process.join()
            shutil.rmtree(metrics_dir, ignore_errors=True)
        return self.exit_code

    def _metrics_dir(self) -> Path:
        # Per supervisor: two servers on one data folder (they may share its embedded
        # PostgreSQL) must not add up, or delete, each other's values.
        metrics_dir = (self.config.metrics_dir or (self.config.data_dir / "metrics" / str(os.getpid()))).resolve()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        # prometheus-client reads this in each worker to share values across processes.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        self.config = dataclasses.replace(self.config, metrics_dir=metrics_dir)
        return metrics_dir

    def _start(self) -> None:
        ours, theirs = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=_worker_main, args=(self.config, self.sockets, theirs), name="mailslot-worker"
        )
        process.start()
        theirs.close()  # the worker holds the only other end
        self.workers.append(_Worker(process, self.generation, ours))

    def _step(self) -> None:
        now = time.monotonic()
        deadlines = [w.kill_at for w in self.workers if w.kill_at is not None]
        deadlines += self.restarts + ([self.reload_deadline] if self.reload_deadline else [])
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        handles: list[object] = [self.signals.read_fd]
        handles += [w.process.sentinel for w in self.workers]
        handles += [w.link for w in self.workers if not (w.serving or w.silent)]
        wait(handles, timeout)  # type: ignore[arg-type]
        for signum in self.signals.read():
            self._on_signal(signum)
        for worker in list(self.workers):
            if not (worker.serving or worker.silent) and worker.link.poll():
                self._on_ready(worker)
        for worker in list(self.workers):
            if not worker.process.is_alive():
                self._on_exit(worker)
        now = time.monotonic()
        for worker in self.workers:
            if worker.kill_at is not None and now >= worker.kill_at:
                log.warning("worker %s did not stop in time; killing it", worker.process.pid)
                _kill(worker.process)
                worker.kill_at = None
        if self.reload_deadline is not None and now >= self.reload_deadline:
            self._abandon_reload(f"the new workers did not start serving within {RELOAD_READY_S:.0f} s")
        due = [t for t in self.restarts if t <= now]
        if due and not self.stopping:
            self.restarts = [t for t in self.restarts if t > now]
            for _ in due:
                self._start()

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self._reload()
        elif signum in _STOP_SIGNALS:
            if self.stopping:
                log.warning("second stop signal: killing %d workers", len(self.workers))
                for worker in self.workers:
                    _kill(worker.process)
            else:
                log.info("stopping %d workers", len(self.workers))
                self._stop_all()

    def _stop_all(self) -> None:
        self.stopping = True
        self.restarts.clear()
        self.reload_deadline = None
        for worker in self.workers:
            self._stop(worker)

    def _stop(self, worker: _Worker) -> None:
        if not worker.stopped:
            worker.stopped = True
            worker.kill_at = time.monotonic() + self.config.shutdown_timeout_s + KILL_GRACE_S
            _signal(worker.process, signal.SIGTERM)

    def _on_ready(self, worker: _Worker) -> None:
        try:
            worker.link.recv()
            worker.serving = True
        except (EOFError, OSError):
            worker.silent = True
            return
        if self.reload_deadline is None:
            return
        new = [w for w in self.workers if w.generation == self.generation and not w.stopped]
        if len(new) == self.config.workers and all(w.serving for w in new):
            old = [w for w in self.workers if w.generation < self.generation and not w.stopped]
            log.info("reload: %d new workers serve; draining %d old ones", len(new), len(old))
            self.reload_deadline = None
            for stale in old:
                self._stop(stale)

    def _on_exit(self, worker: _Worker) -> None:
        self.workers.remove(worker)
        worker.link.close()
        pid, code = worker.process.pid, worker.process.exitcode
        if pid is not None:
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # its live gauges (held polls) no longer count
        if self.stopping or worker.stopped:
            return
        if self.reload_deadline is not None and worker.generation == self.generation:
            self._abandon_reload(f"a new worker exited with {code}")
            return
        now = time.monotonic()
        self.failures.append(now)
        while self.failures and self.failures[0] <= now - self.config.restart_window_s:
            self.failures.popleft()
        recent = len(self.failures)
        if recent > self.config.restart_limit:
            log.error("worker %s exited with %s: %d failures within %.0f s; stopping",
                      pid, code, recent, self.config.restart_window_s)
            self.exit_code = 1
            self._stop_all()
            return
        delay = 0.0 if recent == 1 else min(MAX_BACKOFF_S, 0.5 * 2 ** (recent - 2))
        log.error("worker %s exited with %s; restarting in %.1f s", pid, code, delay)
        self.restarts.append(now + delay)

    def _reload(self) -> None:
        if self.stopping:
            return
        if self.reload_deadline is not None:
            log.info("reload already in progress")
            return
        self.generation += 1
        self.restarts.clear()  # the new generation replaces whatever was waiting to restart
        self.reload_deadline = time.monotonic() + RELOAD_READY_S
        log.info("reload: starting %d new workers", self.config.workers)
        for _ in range(self.config.workers):
            self._start()

    def _abandon_reload(self, why: str) -> None:
        log.error("reload abandoned: %s; the old workers keep serving", why)
        self.reload_deadline = None
        for worker in self.workers:
            if worker.generation == self.generation:
                self._stop(worker)
        self.generation -= 1
        missing = self.config.workers - len(
            [w for w in self.workers if w.generation == self.generation and not w.stopped]
        )
        self.restarts += [time.monotonic()] * max(0, missing)


def _signal(process: BaseProcess, signum: int) -> None:
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def _kill(process: BaseProcess) -> None:
    _signal(process, signal.SIGKILL)


# The worker


def _worker_main(config: Config, sockets: list[socket.socket], link: Connection) -> None:
    # Own process group: a terminal's Ctrl-C or hangup reaches only the supervisor.
    os.setpgrp()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    run_worker(config, sockets, link)


def run_worker(config: Config, sockets: list[socket.socket], link: Connection | None = None) -> None:
    """One gateway process serving on the supervisor's sockets until SIGTERM/SIGINT, then a graceful stop."""
    configure_logging(config.log_level, "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    # Tens of thousands of held polls are millions of live objects; with CPython's default
    # thresholds the cyclic collector re-scanned them so often that it took a third of a
    # worker's time (bench scenario 3). Nothing of a held poll is a cycle that must be freed
    # early, so collect the young generation less often and never scan what import created.
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    raise_open_files_limit()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_work(config, sockets, link))
    finally:
        loop.close()


async def _work(config: Config, sockets: list[socket.socket], link: Connection | None) -> None:
    """Start up, serve, stop; a stop signal during start-up skips serving (it is never lost)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    if link is not None:
        # The supervisor never writes: the link turns readable only at EOF, when it is gone
        # (killed), and no worker should outlive it.
        loop.add_reader(link.fileno(), _orphaned, link.fileno(), stop)
    app = create_app(config)
    guard = ConnectionGuard(
        header_timeout_s=config.header_timeout_s, max_per_ip=config.max_connections_per_ip, metrics=app[METRICS],
        max_connections=_max_connections(config),
    )
    app[CONNECTIONS] = guard
    runner = web.AppRunner(
        app, handle_signals=False, handler_cancellation=True, access_log=None,
        keepalive_timeout=config.keepalive_timeout_s, shutdown_timeout=config.shutdown_timeout_s,
    )
    stopped = asyncio.create_task(stop.wait())
    setup = asyncio.create_task(runner.setup())
    try:
        await asyncio.wait({setup, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            setup.result()  # a failed start-up exits the worker with an error; the supervisor decides
            # What start-up made (the app, its pool, templates, caches) lives as long as the worker:
            # out of the collector's generations, full collections walk only requests. Before the
            # sites start, so that no request's objects are frozen with it.
            gc.collect()
            gc.freeze()
            for sock in sockets:
                await GuardedSockSite(runner, sock, guard).start()
            log.info("serving on http://%s:%d", config.host, config.port)
            if link is not None:
                link.send(os.getpid())
            await stop.wait()
        log.info("stopping")
    finally:
        if not setup.done():
            setup.cancel()
            await asyncio.wait({setup}, timeout=config.shutdown_timeout_s)
        # Stop accepting first, then give connections accepted a moment ago the time to send their
        # request: the shutdown that follows closes idle connections at once and lets busy ones
        # finish, and a client whose connection was closed before its request was read would see a
        # reset during a reload, although the listening socket never stopped accepting.
        app[STOPPING].set()  # /readyz turns 503 and answers ask clients to come back on a new connection
        for site in list(runner.sites):
            await site.stop()
        await asyncio.sleep(ACCEPTED_GRACE_S)
        await runner.cleanup()
        stopped.cancel()


def _max_connections(config: Config) -> int:
    """Client connections this worker may hold and still open its database connections (0: no cap)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 0
    return connection_limit(soft, config.pool_max)


def _orphaned(fd: int, stop: asyncio.Event) -> None:
    asyncio.get_running_loop().remove_reader(fd)  # level-triggered: EOF stays readable
    if not stop.is_set():
        log.warning("the supervisor is gone; stopping")
        stop.set()


async def _ensure_demo_workspace(config: Config, url: str) -> None:
    """On first start, create the demo workspace and show its credentials (also kept in the data folder)."""
    pool = await storage.create_pool(url, min_size=1, max_size=2)
    try:
        credentials = await create_demo_workspace(pool)
        demo = await storage.get_workspace_by_name(pool, DEMO_WORKSPACE)
        link = await create_link(pool, demo.id) if demo is not None else None
    finally:
        await pool.close()
    host = config.host if config.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    if link is not None:
        # Printed on every start: a fresh one-time link, valid 15 minutes (`mailslot console-link` makes more).
        print(f"\nConsole (demo workspace): http://{host}:{config.port}/console/link#{link}\n", flush=True)
    if credentials is None:
        return
    path = config.data_dir / "demo-workspace.json"
    save_credentials(credentials, path)
    values = credentials_dict(credentials)
    print(
        "\nDemo workspace created (credentials also saved in " + str(path) + "):\n"
        f"  site id:         {values['site_id']}\n"
        f"  API key:         {values['api_key']}\n"
        f"  identity secret: {values['identity_secret']}\n"
        f"  identity proof:  off. Anyone who knows a person's id can poll as them and take their\n"
        f"                   messages: for demos only (`mailslot workspace create` makes `required` ones).\n",
        flush=True,
    )
