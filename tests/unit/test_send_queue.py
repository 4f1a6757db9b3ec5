"""The send queue (storage/send_queue.py): who goes in which statement, and who gets which answer.

The runner is a fake whose statements finish only when the test says so, so each test knows
exactly which sends were waiting while a statement was in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from storage.errors import StorageUnavailable
from storage.send_queue import SendQueue


class Statements:
    """A fake `send_messages`: records each call and holds it until `finish` is called."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[str], datetime | None]] = []
        self.gates: list[asyncio.Future[None]] = []
        self.started = asyncio.Condition()
        self.waited = 0  # calls already waited for by `next_call`
        self.refuse: set[str] = set()
        self.unavailable = False

    async def run(self, workspace_id: int, items: Sequence[str], now: datetime | None) -> list[str]:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.calls.append((workspace_id, list(items), now))
        self.gates.append(gate)
        async with self.started:
            self.started.notify_all()
        await gate
        if self.unavailable:
            raise StorageUnavailable("database unavailable: ConnectionResetError")
        if self.refuse & set(items):
            raise ValueError("the database refused a value")
        return [f"sent {item}" for item in items]

    async def next_call(self) -> None:
        """Wait until one more statement than last time has started."""
        self.waited += 1
        async with self.started:
            await asyncio.wait_for(self.started.wait_for(lambda: len(self.calls) >= self.waited), 5)

    def finish(self) -> None:
        for gate in self.gates:
            if not gate.done():
                gate.set_result(None)


async def test_a_lone_send_runs_at_once_as_a_statement_of_its_own() -> None:
    statements = Statements()
    queue = SendQueue(statements.run)
    sent = asyncio.ensure_future(queue.send(1, "a", None))
    await statements.next_call()
    statements.finish()
    assert await asyncio.wait_for(sent, 5) == "sent a"
    assert statements.calls == [(1, ["a"], None)]


async def test_sends_arriving_while_a_statement_runs_go_together_in_the_next() -> None:
    statements = Statements()
    queue = SendQueue(statements.run)
    first = asyncio.ensure_future(queue.send(1, "a", None))
    await statements.next_call()
    later = [asyncio.ensure_future(queue.send(1, item, None)) for item in ("b", "c", "d")]
    await asyncio.sleep(0)  # let them enqueue
    statements.finish()
    await statements.next_call()
    statements.finish()

    assert await asyncio.wait_for(asyncio.gather(first, *later), 5) == ["sent a", "sent b", "sent c", "sent d"]
    assert [items for _, items, _ in statements.calls] == [["a"], ["b", "c", "d"]]


async def test_a_statement_holds_at_most_max_items() -> None:
    statements = Statements()
    queue = SendQueue(statements.run, max_items=2)
    first = asyncio.ensure_future(queue.send(1, "a", None))
    await statements.next_call()
    later = [asyncio.ensure_future(queue.send(1, item, None)) for item in "bcde"]
    await asyncio.sleep(0)
    for _ in range(2):
        statements.finish()
        await statements.next_call()
    statements.finish()
    await asyncio.wait_for(asyncio.gather(first, *later), 5)
    assert [items for _, items, _ in statements.calls] == [["a"], ["b", "c"], ["d", "e"]]


async def test_workspaces_and_clocks_never_share_a_statement() -> None:
    statements = Statements()
    queue = SendQueue(statements.run)
    fixed = datetime(2026, 1, 1, tzinfo=UTC)
    sends = [asyncio.ensure_future(queue.send(w, item, now))
             for w, item, now in ((1, "a", None), (2, "b", None), (1, "c", fixed), (1, "d", None))]
    for _ in range(3):
        await statements.next_call()
    statements.finish()
    assert await asyncio.wait_for(asyncio.gather(*sends), 5) == ["sent a", "sent b", "sent c", "sent d"]
    assert sorted(statements.calls, key=repr) == sorted(
        [(1, ["a", "d"], None), (2, ["b"], None), (1, ["c"], fixed)], key=repr)


async def test_an_unavailable_database_fails_every_caller_of_the_statement() -> None:
    statements = Statements()
    queue = SendQueue(statements.run)
    statements.unavailable = True
    sends = [asyncio.ensure_future(queue.send(1, item, None)) for item in "abc"]
    await statements.next_call()
    statements.finish()
    results = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), 5)
    assert all(isinstance(r, StorageUnavailable) for r in results), results
    assert len(statements.calls) == 1  # not retried item by item: each would fail the same way


async def test_a_value_the_database_refuses_fails_only_its_own_caller() -> None:
    statements = Statements()
    queue = SendQueue(statements.run)
    statements.refuse = {"bad"}
    sends = [asyncio.ensure_future(queue.send(1, item, None)) for item in ("a", "bad", "c")]
    await statements.next_call()
    statements.finish()
    for _ in range(3):  # each item alone
        await statements.next_call()
        statements.finish()
    results = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), 5)
    assert results[0] == "sent a" and results[2] == "sent c"
    assert isinstance(results[1], ValueError)
    assert [items for _, items, _ in statements.calls] == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_a_caller_cancelled_before_its_statement_is_not_sent() -> None:
    statements = Statements()
    queue = SendQueue(statements.run)
    first = asyncio.ensure_future(queue.send(1, "a", None))
    await statements.next_call()
    gone = asyncio.ensure_future(queue.send(1, "gone", None))
    kept = asyncio.ensure_future(queue.send(1, "kept", None))
    await asyncio.sleep(0)
    gone.cancel()
    statements.finish()
    await statements.next_call()
    statements.finish()
    assert await asyncio.wait_for(asyncio.gather(first, kept), 5) == ["sent a", "sent kept"]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert [items for _, items, _ in statements.calls] == [["a"], ["kept"]]


async def test_a_caller_cancelled_during_its_statement_leaves_the_others_their_answers() -> None:
    statements = Statements()
    queue = SendQueue(statements.run)
    sends = [asyncio.ensure_future(queue.send(1, item, None)) for item in "abc"]
    await statements.next_call()
    sends[1].cancel()
    statements.finish()
    results = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), 5)
    assert results[0] == "sent a" and results[2] == "sent c"
    assert isinstance(results[1], asyncio.CancelledError)
    assert statements.calls == [(1, ["a", "b", "c"], None)]
