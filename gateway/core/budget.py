"""The render budget: what one person's render of a message may cost, all templates together.

Rules: a budget belongs to one render (every text field of one message for one person) and
counts loop iterations over all loops (a loop after a loop adds, a loop in a loop multiplies),
characters written (captures included) and the render thread's CPU time. CPU time, not wall
time: a render waiting for the GIL or a core on a loaded host is not charged for it, so a
legitimate template never fails because the machine is busy. Rendering runs off the event loop
(`off_loop`), so the time limit bounds how long a render holds a render thread, never the loop;
the time is checked at every filter call and every few template nodes, which is enough because
every filter is linear in inputs that are themselves bounded (see personalize.py).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from typing import Any, TypeVar

from liquid import BoundTemplate, RenderContext

__all__ = [
    "MAX_ITERATIONS",
    "MAX_OUTPUT",
    "MAX_RENDER_S",
    "Budget",
    "OverBudget",
    "off_loop",
    "render_within",
]

# Loop iterations of one render, over all its loops and fields: ten times a generous message.
MAX_ITERATIONS = 10_000
# Characters one render may write (captures included); a message's text fields hold ~50,000.
MAX_OUTPUT = 200_000
# CPU seconds one render may take; a typical personalized message takes about 0.1 ms.
MAX_RENDER_S = 0.25
# Template nodes rendered between two reads of the clock (a read is a system call).
_NODES_PER_CLOCK = 32
# Render threads per process: renders of concurrent sends overlap; more threads would take the
# GIL from the event loop more often (docs/decisions/0013-template-budget.md).
RENDER_THREADS = 2

T = TypeVar("T")


class OverBudget(Exception):
    """The render went over one of its limits; `reason` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Budget:
    """What is left of one render's allowance; every charge raises OverBudget when it runs out."""

    __slots__ = ("_deadline", "_ticks", "iterations", "output")

    def __init__(self) -> None:
        self.iterations = 0
        self.output = 0
        self._ticks = 0
        self._deadline = time.thread_time() + MAX_RENDER_S

    def loop(self, length: int) -> None:
        """A loop of `length` iterations starts."""
        self.iterations += max(0, length)
        if self.iterations > MAX_ITERATIONS:
            raise OverBudget(f"the templates ran more than {MAX_ITERATIONS} loop iterations")
        self.clock()

    def write(self, size: int) -> None:
        self.output += size
        if self.output > MAX_OUTPUT:
            raise OverBudget(f"the templates wrote more than {MAX_OUTPUT} characters")

    def tick(self) -> None:
        """One template node renders: read the clock now and then."""
        self._ticks += 1
        if self._ticks >= _NODES_PER_CLOCK:
            self.clock()

    def clock(self) -> None:
        self._ticks = 0
        if time.thread_time() > self._deadline:
            raise OverBudget(f"the templates took more than {int(MAX_RENDER_S * 1000)} ms of CPU time")


class _Buffer(StringIO):
    """Output that charges the budget for every character written."""

    def __init__(self, budget: Budget) -> None:
        super().__init__()
        self.budget = budget

    def write(self, text: str, /) -> int:
        self.budget.write(len(text))
        return super().write(text)


class _Context(RenderContext):
    """A render context charging one budget, shared by its copies."""

    budget: Budget

    # Liquid reads `disabled_tags` before rendering every node: the one hook every node passes.
    @property
    def disabled_tags(self) -> list[str]:
        self.budget.tick()
        return self._disabled

    @disabled_tags.setter
    def disabled_tags(self, value: list[str]) -> None:
        self._disabled = value

    def raise_for_loop_limit(self, length: int = 1) -> None:
        self.budget.loop(length)

    def filter(self, name: str, token: Any) -> Callable[..., object]:
        # Every filter call reads the clock: a filter is the costliest single step of a render.
        self.budget.clock()
        return super().filter(name, token)

    def get_buffer(self, buf: Any = None) -> StringIO:
        return _Buffer(self.budget)

    def copy(self, *args: Any, **kwargs: Any) -> RenderContext:
        copied = super().copy(*args, **kwargs)
        copied.budget = self.budget  # type: ignore[attr-defined]
        return copied


def render_within(template: BoundTemplate, context: dict[str, Any], budget: Budget) -> str:
    """The template rendered against `context`, charged to `budget`."""
    ctx = _Context(template, globals=template.make_globals(context))
    ctx.budget = budget
    buffer = _Buffer(budget)
    template.render_with_context(ctx, buffer)
    return buffer.getvalue()


@functools.cache
def _threads() -> ThreadPoolExecutor:
    """The process's render threads, made on first use (after `serve --workers` has forked)."""
    return ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="mailslot-render")


async def off_loop(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` run in a render thread, so that a slow render never stalls the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_threads(), func, *args)
