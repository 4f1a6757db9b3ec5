"""The commit-order barrier: proof that every notice committed before a moment has been heard.

Why: a short poll answered from memory must not miss a message committed before the poll
arrived, whose notice may still be on its way to this process. PostgreSQL delivers notifications
to a listening connection in commit order, so a marker this process sends on its own channel
(after the poll arrived) and hears back on its listener follows every such notice: once it is
heard, the notice has been handled and has already dropped the person's entry.

Shape: group commit. Polls that arrive while a marker is in flight join the next round, so one
marker (one small statement) serves every poll of a burst; the sender lets the loop turn once
before it sends, so that requests already read join this round rather than the next (fewer
markers per poll; each costs both listening backends a wake-up, decision 0034). A round fails (the caller asks the
database instead) when the listener is down or reconnects, when the marker cannot be sent, or
when it is not heard within `timeout_s`.

The marker is sent on the listener's own connection (storage/listener.py), not through the pool:
while claims hold every pool connection, a marker queued behind them would keep every waiting
poll waiting too. It costs no WAL flush: a transaction that wrote nothing but its commit record
(a NOTIFY writes no WAL) commits without one, whatever `synchronous_commit` says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .metrics import Metrics

__all__ = ["Barrier"]

log = logging.getLogger("mailslot.gateway.barrier")


class _Round:
    """One marker's polls: a future per poll, so a cancelled poll cancels only its own wait."""

    __slots__ = ("sent_at", "timer", "waiters")

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future[bool]] = []
        self.sent_at = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def end(self, ok: bool) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(ok)


class Barrier:
    """`await barrier.wait()` is True once a marker sent after the call was heard back."""

    def __init__(
        self, send: Callable[[str], Awaitable[None]], *, timeout_s: float = 1.0, metrics: Metrics | None = None,
    ) -> None:
        self._send = send
        self._timeout_s = timeout_s
        self._metrics = metrics
        # The round that callers join now; it is sent after every one of them arrived.
        self._next: _Round | None = None
        # Rounds sent and not yet heard, by token, oldest first.
        self._sent: dict[str, _Round] = {}
        self._sender: asyncio.Task[None] | None = None
        self._seq = 0
        self.active = False

    async def wait(self) -> bool:
        if not self.active:
            return False
        if self._next is None:
            self._next = _Round()
            if self._sender is None:
                self._sender = asyncio.create_task(self._send_rounds(), name="mailslot.barrier")
        # A future of its own, not the round's: a cancelled poll must not cancel every other poll's wait.
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._next.waiters.append(waiter)
        return await waiter

    async def _send_rounds(self) -> None:
        """Send one marker at a time; callers who arrived meanwhile form the next round."""
        loop = asyncio.get_running_loop()
        try:
            while self._next is not None:
                # One turn of the loop first: requests already read in join this round, not the next.
                await asyncio.sleep(0)
                round_, self._next = self._next, None
                if round_ is None:  # reset meanwhile
                    continue
                if self._metrics is not None:
                    self._metrics.barrier_polls_tally.inc(len(round_.waiters))
                self._seq += 1
                token = str(self._seq)
                # Registered before sending: the listener may hear it before the statement returns.
                self._sent[token] = round_
                round_.sent_at = loop.time()
                round_.timer = loop.call_later(self._timeout_s, self._resolve, token, False)
                try:
                    await self._send(token)
                except Exception as exc:  # any failure means: ask the database
                    log.warning("barrier marker not sent: %s", exc)
                    self._resolve(token, False)
        finally:
            self._sender = None

    def heard(self, token: str) -> None:
        """The listener heard a marker: its round, and any older one still open (lost), end."""
        if token not in self._sent:
            return
        for older in list(self._sent):
            self._resolve(older, older == token)
            if older == token:
                break

    def reset(self, *, active: bool) -> None:
        """The listener (re)connected or went down: no marker in flight can prove anything."""
        self.active = active
        for token in list(self._sent):
            self._resolve(token, False)
        if self._next is not None:
            self._next.end(False)
        self._next = None

    def _resolve(self, token: str, ok: bool) -> None:
        round_ = self._sent.pop(token, None)
        if round_ is None:
            return
        round_.end(ok)
        if self._metrics is not None:
            self._metrics.barrier_result("heard" if ok else "failed").inc()
            if ok:
                self._metrics.barrier_round_tally.observe(asyncio.get_running_loop().time() - round_.sent_at)
