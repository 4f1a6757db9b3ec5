"""Load-generator processes: spawn them, hand each a job, talk to them over a pipe, collect results.

Why processes: one process can open only about 20,000 files, and one Python process saturates
one core long before the gateway does. Each child runs one job (a coroutine named in `JOBS`) on
uvloop. Over its duplex pipe a child sends `{"event": ...}` dicts (`ready`, answers to `ask`, then
one `result` or `error`); the parent sends commands (`go`, `stop`, or a question such as
`progress` that a job answers from a handler, so nothing piles up unread). Every job carries an absolute
`deadline` (time.time()): the child stops by itself then, and also when the parent goes away
(end of file on the pipe); the parent kills a child that outlives its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import time
import traceback
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

__all__ = ["JOBS", "Channel", "Fleet", "JobError"]

# kind -> "module:function"; the function is `async def job(spec: dict, channel: Channel) -> dict`.
JOBS = {
    "short_polls": "bench.device_jobs:short_polls",
    "claim_race": "bench.device_jobs:claim_race",
    "held_polls": "bench.device_jobs:held_polls",
    "sender": "bench.device_jobs:sender",
    "claim_race_sql": "bench.claim_ceiling:claim_race_sql",
    "backend_sends": "bench.send_jobs:backend_sends",
    "send_sql": "bench.send_jobs:send_sql",
    "nchan_subscribers": "bench.nchan_jobs:subscribers",
    "nchan_publisher": "bench.nchan_jobs:publisher",
}

GRACE_S = 15.0


class JobError(RuntimeError):
    """A load-generator process failed or missed its deadline."""


class Channel:
    """The child's end of the pipe, seen from its event loop."""

    def __init__(self, conn: Connection, deadline: float) -> None:
        self._conn = conn
        self.deadline = deadline
        self.stopped = asyncio.Event()
        self._commands: set[str] = set()
        self._changed = asyncio.Event()
        self._handlers: dict[str, Callable[[], None]] = {}

    def attach(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self._conn.fileno(), self._on_readable)
        # The event loop made the pipe non-blocking; a large result must not fail with EAGAIN.
        os.set_blocking(self._conn.fileno(), True)
        loop.call_at(loop.time() + max(0.0, self.deadline - time.time()), self.stopped.set)

    def detach(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._conn.fileno())

    def answer(self, question: str, handler: Callable[[], None]) -> None:
        """Run `handler` (which sends the answer) whenever the parent asks `question`."""
        self._handlers[question] = handler

    def _on_readable(self) -> None:
        try:
            command = self._conn.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self.stopped.set()
            return
        handler = self._handlers.get(command)
        if handler is not None:
            handler()
            return
        self._commands.add(command)
        if command == "stop":
            self.stopped.set()
        self._changed.set()

    def send(self, event: str, **fields: Any) -> None:
        self._conn.send({"event": event, **fields})

    async def command(self, name: str) -> bool:
        """Wait for a command from the parent; False if told to stop (or past the deadline) first."""
        while name not in self._commands:
            if self.stopped.is_set():
                return False
            self._changed.clear()
            stop = asyncio.ensure_future(self.stopped.wait())
            changed = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait({stop, changed}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            changed.cancel()
        return True

    def seconds_left(self) -> float:
        return self.deadline - time.time()


def _child_main(spec: dict[str, Any], conn: Connection) -> None:
    import uvloop

    module_name, function_name = JOBS[spec["kind"]].split(":")
    job: Callable[[dict[str, Any], Channel], Awaitable[dict[str, Any]]] = getattr(
        importlib.import_module(module_name), function_name
    )
    channel = Channel(conn, spec["deadline"])

    async def run() -> dict[str, Any]:
        channel.attach()
        try:
            return await job(spec, channel)
        finally:
            channel.detach()

    try:
        result = uvloop.run(run())
        os.set_blocking(conn.fileno(), True)
        conn.send({"event": "result", "result": result})
    except BaseException:
        conn.send({"event": "error", "error": traceback.format_exc()})
    finally:
        conn.close()


class Fleet:
    """A set of load-generator processes started together; always `close()` it (or use `with`)."""

    def __init__(self, specs: list[dict[str, Any]], *, name: str = "loadgen") -> None:
        self._specs = specs
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess] = []
        self._conns: list[Connection] = []
        self._events: list[list[dict[str, Any]]] = [[] for _ in specs]
        self._results: list[dict[str, Any] | None] = [None for _ in specs]
        self.name = name

    def start(self) -> Fleet:
        for index, spec in enumerate(self._specs):
            parent, child = self._context.Pipe(duplex=True)
            process = self._context.Process(
                target=_child_main, args=(spec, child), name=f"{self.name}-{index}", daemon=True
            )
            process.start()
            child.close()
            self._processes.append(process)
            self._conns.append(parent)
        return self

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, command: str) -> None:
        for conn, result in zip(self._conns, self._results, strict=True):
            if result is None:
                try:
                    conn.send(command)
                except (BrokenPipeError, OSError):
                    pass

    def _pump(self, timeout_s: float) -> None:
        """Read whatever the children sent within `timeout_s`; raise on a child's error."""
        open_conns = [c for c, r in zip(self._conns, self._results, strict=True) if r is None and not c.closed]
        readable = {id(c) for c in wait(open_conns, timeout=timeout_s)}
        for index, conn in enumerate(self._conns):
            if id(conn) not in readable:
                continue
            try:
                message: dict[str, Any] = conn.recv()
            except (EOFError, OSError):
                conn.close()
                if self._results[index] is None:
                    code = self._processes[index].exitcode
                    raise JobError(f"{self.name}-{index} died (exit code {code})") from None
                continue
            if message["event"] == "error":
                raise JobError(f"{self.name}-{index} failed:\n{message['error']}")
            if message["event"] == "result":
                self._results[index] = message["result"]
            else:
                self._events[index].append(message)

    def wait_event(
        self, event: str, timeout_s: float, progress: Callable[[], None] | None = None
    ) -> list[dict[str, Any]]:
        """Block until every child has sent `event` at least once; the latest one of each."""
        deadline = time.monotonic() + timeout_s
        while True:
            latest = [next((e for e in reversed(events) if e["event"] == event), None) for events in self._events]
            if all(e is not None for e in latest):
                return [e for e in latest if e is not None]
            if time.monotonic() > deadline:
                raise JobError(f"{self.name}: not every process reported {event!r} within {timeout_s:.0f}s")
            self._pump(1.0)
            if progress is not None:
                progress()

    def ask(self, question: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Every running child's fresh answer to `question` (a job registers it with `Channel.answer`)."""
        for events in self._events:
            events[:] = [e for e in events if e["event"] != question]
        self.send(question)
        deadline = time.monotonic() + timeout_s
        while True:
            answers = [next((e for e in events if e["event"] == question), None)
                       for events, result in zip(self._events, self._results, strict=True) if result is None]
            if all(a is not None for a in answers):
                return [a for a in answers if a is not None]
            if time.monotonic() > deadline:
                raise JobError(f"{self.name}: no answer to {question!r} within {timeout_s:.0f}s")
            self._pump(0.2)

    def results(self, progress: Callable[[], None] | None = None) -> list[dict[str, Any]]:
        """Every child's result, waiting at most until the latest deadline plus a grace period."""
        deadline = max(spec["deadline"] for spec in self._specs) + GRACE_S
        while any(r is None for r in self._results):
            if time.time() > deadline:
                raise JobError(f"{self.name}: processes outlived their deadline")
            self._pump(1.0)
            if progress is not None:
                progress()
        return [r for r in self._results if r is not None]

    def close(self) -> None:
        """Stop every child: ask, then terminate, then kill."""
        self.send("stop")
        for process in self._processes:
            process.join(timeout=5)
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for conn in self._conns:
            conn.close()
