"""LISTEN on the queue channel over one dedicated connection, outside the serving pool.

Rules: notifications only wake things up; they never carry a message, and a woken poll claims
through the normal path. The connection reconnects with backoff and probes with `SELECT 1`
when idle; after every (re)connect `on_connect` runs, because anything sent while it was down
was lost. Payloads are parsed by `storage/notices.py`; one that does not parse is logged and
dropped there; a callback's error never stops the listener. The same connection also LISTENs on
the process's own barrier channel, if given: one connection reads one queue in commit order, so
a marker heard there follows every notice committed before it. The markers are sent on this
connection too (`notify_barrier`): a dedicated session, so a marker never queues behind claims
for a pool connection, and PostgreSQL hands a session its own notifications before it answers
the statement. Markers and probes take turns (one statement at a time on a connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import asyncpg

from .notices import NOTIFY_CHANNEL, Notice, notify_barrier, parse_notice

__all__ = ["Listener"]

log = logging.getLogger("mailslot.storage.listener")


class Listener:
    """Run with `await listener.run()` in a task; cancel the task to stop."""

    def __init__(
        self,
        dsn: str,
        on_notice: Callable[[Notice], None],
        on_connect: Callable[[], None],
        *,
        on_reconnect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        barrier_channel: str | None = None,
        on_barrier: Callable[[str], None] | None = None,
        probe_interval_s: float = 10.0,
        max_backoff_s: float = 5.0,
        channel: str = NOTIFY_CHANNEL,
    ) -> None:
        self._dsn = dsn
        self._on_notice = on_notice
        self._on_connect = on_connect
        self._on_reconnect = on_reconnect
        self._on_disconnect = on_disconnect
        self._probe_interval_s = probe_interval_s
        self._max_backoff_s = max_backoff_s
        self._channel = channel
        self._barrier_channel = barrier_channel
        self._on_barrier = on_barrier
        self.connected = asyncio.Event()
        self.backend_pid: int | None = None
        self._conn: asyncpg.Connection | None = None
        # One statement at a time on the connection: barrier markers and idle probes.
        self._turn = asyncio.Lock()

    def _dispatch(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        notice = parse_notice(payload)
        if notice is None:
            return
        try:
            self._on_notice(notice)
        except Exception:
            log.exception("notification handler failed")

    def _dispatch_barrier(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if self._on_barrier is None:
            return
        try:
            self._on_barrier(payload)
        except Exception:
            log.exception("barrier handler failed")

    async def run(self) -> None:
        backoff = 0.1
        first = True
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "mailslot-listener"})
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self._channel, self._dispatch)
                if self._barrier_channel is not None:
                    await conn.add_listener(self._barrier_channel, self._dispatch_barrier)
                self.backend_pid = conn.get_server_pid()
                self._conn = conn
                self.connected.set()
                if not first and self._on_reconnect is not None:
                    self._on_reconnect()
                first = False
                self._on_connect()
                backoff = 0.1
                await self._probe_until_lost(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listener connection failed: %s; retrying in %.1fs", exc, backoff)
            finally:
                if self.connected.is_set() and self._on_disconnect is not None:
                    self._on_disconnect()
                self.connected.clear()
                self._conn = None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=1))
            _stop_if_cancelled()
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._max_backoff_s)

    async def _probe_until_lost(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when the connection is gone: terminated, or a probe failed."""
        while True:
            # Not `asyncio.wait_for`: on Python 3.11 it drops a cancellation that arrives as the
            # wait ends (the loss and a shutdown together), and the listener would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._probe_interval_s):
                    await lost.wait()
            if lost.is_set() or conn.is_closed():
                raise ConnectionError("listener connection lost")
            async with self._turn:
                await conn.fetchval("SELECT 1", timeout=5)

    async def notify_barrier(self, token: str, *, timeout_s: float = 5.0) -> None:
        """Send a barrier marker on the listening connection; raises when it is not connected."""
        conn = self._conn
        if conn is None or self._barrier_channel is None or not self.connected.is_set():
            raise ConnectionError("the listener is not connected")
        async with self._turn:
            await notify_barrier(conn, self._barrier_channel, token, timeout_s=timeout_s)


def _stop_if_cancelled() -> None:
    """Raise the cancellation a library swallowed: a listener asked to stop never reconnects."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
