"""When each device last polled, for the console: gathered in memory, written in batches.

The console's person page shows each device's last poll ("no device has polled since"); a minute
of lag is fine there, a write on every poll is not. Each process keeps the latest poll of every
device that polled since its last flush in one dict, and writes the lot in one statement every
`flush_interval_s` (and at shutdown, and before the console reads them). A lost batch (database
down) is kept for the next flush, so an outage delays the times rather than losing them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import asyncpg

import storage

from .clock import Clock

__all__ = ["DevicePolls"]

log = logging.getLogger("mailslot.gateway")


class DevicePolls:
    """One per process: the latest poll time of each (workspace, user, device) not yet written."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, *, flush_interval_s: float) -> None:
        self._pool = pool
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        # The time is None in production: the database's now() at the flush, within one interval.
        self._pending: dict[tuple[int, str, str], datetime | None] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, workspace_id: int, user: str, device_id: str) -> None:
        """Note a poll; no I/O, so a poll never waits for it."""
        self._pending[(workspace_id, user, device_id)] = self._clock.now()

    async def flush(self) -> int:
        """Write every noted poll in one statement; how many. On failure they stay for the next flush."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        try:
            await storage.record_device_polls(self._pool, [(*key, at) for key, at in batch.items()])
        except BaseException:
            for key, at in batch.items():
                self._pending.setdefault(key, at)  # a newer poll noted meanwhile wins
            raise
        return len(batch)

    async def run(self) -> None:
        """Flush every interval until cancelled."""
        while True:
            await asyncio.sleep(self._flush_interval_s)
            try:
                await self.flush()
            except Exception as exc:  # any failure: the times stay for the next try, the loop goes on
                log.warning("writing devices' last polls failed (kept for the next try): %s", exc)
