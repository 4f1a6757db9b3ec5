"""What a notification means to this process: forget cached facts, then wake the parked polls.

The listener (storage/listener.py) hears every send of every process and hands each notice
here. Order matters: the memory of quiet people (gateway/core/memory.py) forgets a person before
their polls are woken, so a woken poll never finds a stale "nothing pending". While the listener
is down nothing remembered can be trusted, so every poll claims; after it reconnects every held
poll claims once, because notifications sent in between were lost. Barrier markers
(gateway/core/barrier.py) come back on the same connection, after every notice committed before
them; a (re)connect or a disconnect fails the markers in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import storage

from .barrier import Barrier
from .memory import Memory
from .metrics import Metrics
from .waiters import Waiters, Wake
from .workspaces import WorkspaceCache

__all__ = ["Wakeups"]


class Wakeups:
    """The listener's callbacks, bound to this process's caches, barrier and parked polls."""

    def __init__(
        self,
        waiters: Waiters,
        memory: Memory,
        workspaces: WorkspaceCache,
        metrics: Metrics,
        *,
        use_memory: bool,
        barrier: Barrier | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._waiters = waiters
        self._memory = memory
        self._workspaces = workspaces
        self._metrics = metrics
        self._use_memory = use_memory
        self._barrier = barrier
        self._wall_clock = wall_clock

    def on_notice(self, notice: storage.Notice) -> None:
        if isinstance(notice, storage.WorkspaceNotice):
            self._workspaces.forget(notice.workspace)
            self._memory.forget_workspace(notice.workspace)
            return
        if notice.at is not None:
            self._metrics.notification_lag.observe(max(0.0, self._wall_clock() - notice.at))
        if isinstance(notice, storage.BroadcastNotice):
            self._memory.forget_workspace(notice.workspace)
            self._waiters.wake_workspace(notice.workspace)
        else:
            self._memory.forget(notice.workspace, notice.keys)
            self._waiters.wake(notice.workspace, notice.keys)

    def on_barrier(self, token: str) -> None:
        if self._barrier is not None:
            self._barrier.heard(token)

    def on_connect(self) -> None:
        # Markers sent before this connection LISTENed are lost; notices too (hence the clear).
        if self._barrier is not None:
            self._barrier.reset(active=self._use_memory)
        self._memory.clear()
        self._memory.enabled = self._use_memory
        self._waiters.wake_all(Wake.RECONNECT)
        self._workspaces.forget()

    def on_disconnect(self) -> None:
        self._memory.enabled = False
        self._memory.clear()
        if self._barrier is not None:
            self._barrier.reset(active=False)
