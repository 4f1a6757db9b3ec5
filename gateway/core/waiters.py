"""The registry of parked polls, keyed by (workspace, person key), with caps and one expiry ticker.

Why this shape: a process may hold tens of thousands of parked polls, so each costs one small
object and one future; add, remove and wake are O(1) dict and set operations; deadlines go into
per-tick buckets that a single task sweeps, instead of a timer per poll. A person's key maps to
the waiter itself, and only to a set once a second poll of that person parks: nearly every person
holds one poll, and a set per person was a fifth of the gateway's own memory per held poll
(docs/decisions/0029-held-poll-memory.md).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from enum import Enum

__all__ = ["Waiter", "Waiters", "Wake"]


class Wake(Enum):
    MESSAGE = "message"      # a message for this person may be deliverable now
    TIMEOUT = "timeout"      # the poll's wait ran out
    SHUTDOWN = "shutdown"    # the process is stopping
    RECONNECT = "reconnect"  # the listener reconnected: notifications may have been lost


class Waiter:
    __slots__ = ("bucket", "future", "keys")

    def __init__(self, keys: tuple[tuple[int, str], ...], bucket: int, future: asyncio.Future[Wake]) -> None:
        self.keys = keys
        self.bucket = bucket
        self.future = future

    def wake(self, reason: Wake) -> bool:
        if self.future.done():
            return False
        self.future.set_result(reason)
        return True


class Waiters:
    """Park, wake and expire held polls; `close()` answers all of them and refuses new ones."""

    def __init__(self, *, max_total: int, max_per_person: int, tick_s: float = 0.25) -> None:
        self.max_total = max_total
        self.max_per_person = max_per_person
        self._tick_s = tick_s
        self._by_key: dict[tuple[int, str], Waiter | set[Waiter]] = {}
        self._buckets: dict[int, set[Waiter]] = {}
        self._count = 0
        self._closed = False

    def __len__(self) -> int:
        return self._count

    @property
    def closed(self) -> bool:
        return self._closed

    def _bucket(self, when: float) -> int:
        return math.ceil(when / self._tick_s)

    def park(self, workspace_id: int, user: str, deadline: float) -> Waiter | None:
        """A waiter until `deadline` (loop time), or None when a cap is reached or the process stops.

        An email-shaped user is also parked under its lower-case form: notifications name
        people by external id as given and by email lower-cased.
        """
        if self._closed or self._count >= self.max_total:
            return None
        keys: tuple[tuple[int, str], ...] = ((workspace_id, user),)
        if user.lower() != user:
            keys += ((workspace_id, user.lower()),)
        # Counted on the lower-case key, which every spelling of one email shares.
        if len(self._parked(keys[-1])) >= self.max_per_person:
            return None
        loop = asyncio.get_running_loop()
        waiter = Waiter(keys, self._bucket(deadline), loop.create_future())
        by_key = self._by_key
        for key in keys:
            group = by_key.get(key)
            if group is None:
                by_key[key] = waiter
            elif isinstance(group, Waiter):
                by_key[key] = {group, waiter}
            else:
                group.add(waiter)
        self._buckets.setdefault(waiter.bucket, set()).add(waiter)
        self._count += 1
        return waiter

    def deadlines(self) -> list[float]:
        """Each parked poll's deadline (loop time) as its expiry tick rounds it: what a test or an
        operator checks the spread of held polls' answers with."""
        return [bucket * self._tick_s for bucket, waiters in self._buckets.items() for _ in waiters]

    def _parked(self, key: tuple[int, str]) -> tuple[Waiter, ...] | set[Waiter]:
        group = self._by_key.get(key)
        if group is None:
            return ()
        return (group,) if isinstance(group, Waiter) else group

    def unpark(self, waiter: Waiter) -> None:
        by_key = self._by_key
        for key in waiter.keys:
            group = by_key.get(key)
            if group is waiter:
                del by_key[key]
            elif isinstance(group, set):
                group.discard(waiter)
                if len(group) == 1:
                    by_key[key] = next(iter(group))
                elif not group:
                    del by_key[key]
        bucket = self._buckets.get(waiter.bucket)
        if bucket is not None and waiter in bucket:
            bucket.discard(waiter)
            if not bucket:
                del self._buckets[waiter.bucket]
        self._count -= 1

    def wake(self, workspace_id: int, keys: Iterable[str]) -> int:
        """Wake every poll parked under any of the person's keys; returns how many woke."""
        woken = 0
        for key in keys:
            for waiter in tuple(self._parked((workspace_id, key))):
                woken += waiter.wake(Wake.MESSAGE)
        return woken

    def wake_workspace(self, workspace_id: int) -> int:
        """Wake every poll parked for a workspace (a broadcast: one notice for its whole audience)."""
        woken = 0
        for key in tuple(self._by_key):
            if key[0] == workspace_id:
                for waiter in tuple(self._parked(key)):
                    woken += waiter.wake(Wake.MESSAGE)
        return woken

    def wake_all(self, reason: Wake) -> int:
        woken = 0
        for key in tuple(self._by_key):
            for waiter in tuple(self._parked(key)):
                woken += waiter.wake(reason)
        return woken

    def close(self) -> int:
        """Stop parking and answer every parked poll now (graceful shutdown)."""
        self._closed = True
        return self.wake_all(Wake.SHUTDOWN)

    def expire(self, now: float) -> int:
        """Time out every waiter whose deadline bucket has passed."""
        current = math.floor(now / self._tick_s)
        expired = 0
        # At most max_wait / tick_s buckets exist, so scanning their keys is cheap.
        for bucket in [b for b in self._buckets if b <= current]:
            for waiter in self._buckets.pop(bucket):
                expired += waiter.wake(Wake.TIMEOUT)
        return expired

    async def run_expiry(self) -> None:
        """The one ticker that times out held polls."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._tick_s)
            self.expire(loop.time())
