"""What a notification means to this process: forget cached facts, then wake the parked polls.

The listener (storage/listener.py) hears every send of every process and hands each notice
here. Order matters: the quiet cache forgets a person before their polls are woken, so a woken
poll never finds a stale "nothing pending". While the listener is down nothing cached can be
trusted, so every poll claims; after it reconnects every held poll claims once, because
notifications sent in between were lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import storage

from .metrics import Metrics
from .quiet import QuietPeople
from .waiters import Waiters, Wake
from .workspaces import WorkspaceCache

__all__ = ["Wakeups"]


class Wakeups:
    """The listener's three callbacks, bound to this process's caches and parked polls."""

    def __init__(
        self,
        waiters: Waiters,
        quiet: QuietPeople,
        workspaces: WorkspaceCache,
        metrics: Metrics,
        *,
        use_quiet: bool,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._waiters = waiters
        self._quiet = quiet
        self._workspaces = workspaces
        self._metrics = metrics
        self._use_quiet = use_quiet
        self._wall_clock = wall_clock

    def on_notice(self, notice: storage.Notice) -> None:
        if isinstance(notice, storage.WorkspaceNotice):
            self._workspaces.forget(notice.workspace)
            self._quiet.forget_workspace(notice.workspace)
            return
        if notice.at is not None:
            self._metrics.notification_lag.observe(max(0.0, self._wall_clock() - notice.at))
        if isinstance(notice, storage.BroadcastNotice):
            self._quiet.forget_workspace(notice.workspace)
            self._waiters.wake_workspace(notice.workspace)
        else:
            self._quiet.forget(notice.workspace, notice.keys)
            self._waiters.wake(notice.workspace, notice.keys)

    def on_connect(self) -> None:
        self._quiet.clear()
        self._quiet.enabled = self._use_quiet
        self._waiters.wake_all(Wake.RECONNECT)
        self._workspaces.forget()

    def on_disconnect(self) -> None:
        self._quiet.enabled = False
        self._quiet.clear()
