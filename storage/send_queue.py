"""Coalesced single sends: while a workspace's `send_messages` statement is in flight, the sends
that arrive for it wait, then go together as the next statement (decision 0030).

Like a database's group commit: there is no timer, so a lone send waits for nothing, and under
load one statement (one commit, one WAL flush, one hold of PostgreSQL's notify lock) carries up to
`MAX_ITEMS` sends. Rules, so that each caller gets exactly what a send of its own would have had:

- One statement per (workspace, now) at a time, per pool: the statement takes one workspace and
  one `now`. Sends arrive in order and go in order.
- Outcomes are per item (`send_messages` already answers a batch item by item, a key used twice
  in one statement included: the first is queued, the other answers as its replay or reuse).
- A statement that fails because the database is unavailable fails every caller in it with that
  error (as each would have failed alone). Any other failure may belong to one item (a value the
  database refuses): each item then runs alone, so one bad send never fails the others.
- A caller cancelled before its statement starts is dropped; one cancelled later was sent, as a
  send whose handler is cancelled mid-statement was.

Device reports (`record_device_events`) coalesce through the same queue, one request per item
(decision 0038).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from .errors import StorageUnavailable

__all__ = ["MAX_ITEMS", "SendQueue", "fail", "settle"]

# Items per statement: the batch route's limit, which the pool's statement timeout allows.
MAX_ITEMS = 1000


ItemT = TypeVar("ItemT")
OutcomeT = TypeVar("OutcomeT")

# A statement's key: the workspace and the `now` it passes.
Key = tuple[int, datetime | None]


@dataclass(frozen=True, slots=True)
class _Waiting(Generic[ItemT, OutcomeT]):
    item: ItemT
    future: asyncio.Future[OutcomeT]


class SendQueue(Generic[ItemT, OutcomeT]):
    """Per pool: the sends waiting for each workspace's statement in flight."""

    def __init__(
        self,
        run: Callable[[int, Sequence[ItemT], datetime | None], Awaitable[Sequence[OutcomeT]]],
        *,
        max_items: int = MAX_ITEMS,
    ) -> None:
        """`run(workspace_id, items, now)` runs one statement: one outcome per item, in order."""
        self._run = run
        self._max_items = max_items
        self._waiting: dict[Key, deque[_Waiting[ItemT, OutcomeT]]] = {}
        # One flusher task per key while it has sends to run; held here so that it is not collected.
        self._flushers: dict[Key, asyncio.Task[None]] = {}

    async def send(self, workspace_id: int, item: ItemT, now: datetime | None) -> OutcomeT:
        """The item's outcome, from the next statement of its workspace."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[OutcomeT] = loop.create_future()
        key = (workspace_id, now)
        self._waiting.setdefault(key, deque()).append(_Waiting(item, future))
        if key not in self._flushers:
            self._flushers[key] = loop.create_task(self._flush(key))
        return await future

    async def _flush(self, key: Key) -> None:
        """Run statements for `key` until no send waits for it."""
        waiting = self._waiting[key]
        batch: list[_Waiting[ItemT, OutcomeT]] = []
        try:
            while True:
                batch = []
                while waiting and len(batch) < self._max_items:
                    entry = waiting.popleft()
                    if not entry.future.done():  # cancelled before its statement: dropped
                        batch.append(entry)
                if not batch:
                    return
                await self._statement(key, batch)
        finally:
            del self._flushers[key]
            del self._waiting[key]
            # Only when this task itself was cancelled (the loop is closing): no caller hangs.
            for entry in (*batch, *waiting):
                if not entry.future.done():
                    entry.future.cancel()

    async def _statement(self, key: Key, batch: list[_Waiting[ItemT, OutcomeT]]) -> None:
        workspace_id, now = key
        try:
            outcomes = await self._run(workspace_id, [entry.item for entry in batch], now)
        except StorageUnavailable as exc:
            for entry in batch:
                fail(entry.future, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                fail(batch[0].future, exc)
                return
            for entry in batch:  # isolate the item the database refused
                await self._statement(key, [entry])
            return
        for entry, outcome in zip(batch, outcomes, strict=True):
            settle(entry.future, outcome)


def settle(future: asyncio.Future[OutcomeT], outcome: OutcomeT) -> None:
    """Answer a waiting caller; shared with the claim queue (storage/claim_queue.py)."""
    if not future.done():  # done: its caller was cancelled while the statement ran
        future.set_result(outcome)


def fail(future: asyncio.Future[OutcomeT], exc: BaseException) -> None:
    """Fail a waiting caller, unless it has gone (cancelled)."""
    if not future.done():
        future.set_exception(exc)
