"""Coalesced claims: while a pool's claim statement is in flight, the claims that arrive wait, then
go together as the next `claim_message_batch` statement (decision 0037).

The woken held polls of one send batch claim at once; one statement each meant one commit (one
WAL flush) each, and the next send batch queued behind them for a pool connection. Like a
database's group commit, and like storage/send_queue.py for sends: there is no timer, so a lone
claim waits for nothing, and under load one statement (one transaction, one commit) carries up to
`MAX_ITEMS` claims. Rules, so that each caller gets exactly what a claim of its own would have had:

- Up to `max_in_flight` statements at a time per pool; claims of any workspace share them (each
  item carries its workspace, `now`, lease and limit). Claims go in the order they arrived.
- Outcomes are per item: the statement runs the claim once per poll, each call seeing what the
  earlier ones wrote, so two devices of one person in one statement are two claims in a row.
- A statement that fails because the database is unavailable fails every caller in it with that
  error (the 503 each would have had alone); a deadlock is retried first (`DEADLOCK_RETRIES`).
  Any other failure may belong to one item (a value the database refuses): each item then runs
  alone, so one bad poll never fails the others.
- A caller cancelled before its statement starts is dropped; one cancelled later was claimed for,
  as a poll whose handler is cancelled mid-statement was: its offers wait for the lease to end
  (or for the same device's next poll).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import StorageUnavailable
from .send_queue import fail, settle

__all__ = ["MAX_IN_FLIGHT", "MAX_ITEMS", "ClaimQueue"]

# Claims per statement: each costs the backend a fraction of a millisecond, so a full statement
# stays far inside the pool's statement timeout.
MAX_ITEMS = 256

# Statements in flight per pool: claims coalesce only while both are busy. Two, not one: a claim
# waiting on a row lock (a visit entry another transaction holds) does not hold up every other
# poll of the process, and PostgreSQL can run two of a worker's claims on two cores; a burst still
# goes as a few statements, not one per poll.
MAX_IN_FLIGHT = 2

ItemT = TypeVar("ItemT")
OutcomeT = TypeVar("OutcomeT")


@dataclass(frozen=True, slots=True)
class _Waiting(Generic[ItemT, OutcomeT]):
    item: ItemT
    future: asyncio.Future[OutcomeT]


class ClaimQueue(Generic[ItemT, OutcomeT]):
    """Per pool: the claims waiting for a statement."""

    def __init__(
        self,
        run: Callable[[Sequence[ItemT]], Awaitable[Sequence[OutcomeT]]],
        *,
        max_items: int = MAX_ITEMS,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        """`run(items)` runs one statement: one outcome per item, in order."""
        assert max_items >= 1 and max_in_flight >= 1
        self._run = run
        self._max_items = max_items
        self._max_in_flight = max_in_flight
        self._waiting: deque[_Waiting[ItemT, OutcomeT]] = deque()
        # Flusher tasks while claims wait or run; held here so that they are not collected.
        self._flushers: set[asyncio.Task[None]] = set()

    async def claim(self, item: ItemT) -> OutcomeT:
        """The item's outcome, from the next statement with room for it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[OutcomeT] = loop.create_future()
        self._waiting.append(_Waiting(item, future))
        if len(self._flushers) < self._max_in_flight:
            task = loop.create_task(self._flush())
            self._flushers.add(task)
        return await future

    async def _flush(self) -> None:
        """Run statements until no claim waits."""
        waiting = self._waiting
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
                await self._statement(batch)
        finally:
            # Here, not in a done callback: a claim arriving before that callback ran would count
            # this task as in flight and wait for a statement that never comes.
            self._flushers.discard(asyncio.current_task())
            # Only when this task itself was cancelled (the loop is closing): no caller hangs.
            for entry in batch:
                if not entry.future.done():
                    entry.future.cancel()
            if not self._flushers:
                for entry in waiting:
                    if not entry.future.done():
                        entry.future.cancel()

    async def _statement(self, batch: list[_Waiting[ItemT, OutcomeT]]) -> None:
        try:
            outcomes = await self._run([entry.item for entry in batch])
        except StorageUnavailable as exc:
            for entry in batch:
                fail(entry.future, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                fail(batch[0].future, exc)
                return
            for entry in batch:  # isolate the item the database refused
                await self._statement([entry])
            return
        for entry, outcome in zip(batch, outcomes, strict=True):
            settle(entry.future, outcome)

