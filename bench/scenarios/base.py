"""What every scenario shares: the run's context, the setup/run/teardown shape, and how to skip.

A scenario's `run()` returns a JSON-ready dict of figures; raw samples it wants plotted go to
`self.samples` (name -> seconds) and stay out of the JSON. `teardown()` must be safe after a
failed or partial `setup()`: it stops only what was started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..harness import Gateway
from ..progress import say
from ..seed import Credentials, create_workspace
from ..settings import Settings

__all__ = ["Context", "Scenario", "Skip", "correctness"]


class Skip(Exception):
    """The scenario cannot run on this machine; the message says what to install."""


@dataclass
class Context:
    settings: Settings
    database_url: str
    work_dir: Path
    started: float = field(default_factory=time.time)

    def gateway(self, workers: int, extra: tuple[str, ...] = ()) -> Gateway:
        return Gateway(self.work_dir, self.database_url, workers=workers, extra=extra)

    def workspace(self, name: str) -> Credentials:
        return create_workspace(self.database_url, name)


class Scenario:
    key = "s0"
    title = ""
    budget_s = 600.0  # hard deadline for this scenario's load-generator processes

    def __init__(self, context: Context) -> None:
        self.context = context
        self.settings = context.settings
        self.samples: dict[str, list[float]] = {}
        self.deadline = 0.0

    def say(self, text: str) -> None:
        say(self.key, text)

    def setup(self) -> None:
        """Start servers and create data; nothing here is measured."""

    def run(self) -> dict[str, Any]:
        raise NotImplementedError

    def teardown(self) -> None:
        """Stop whatever setup started (also after a failure)."""

    def arm(self) -> None:
        """Start the scenario's clock: load generators stop by themselves at `self.deadline`."""
        self.deadline = time.time() + self.budget_s


def correctness(delivered: dict[str, set[str]], expected: int | set[str]) -> dict[str, int]:
    """duplicates: message ids delivered to two or more devices; lost: expected but never delivered."""
    duplicates = sum(1 for devices in delivered.values() if len(devices) > 1)
    if isinstance(expected, set):
        lost = len(expected - delivered.keys())
    else:
        lost = max(0, expected - len(delivered))
    return {"duplicates": duplicates, "lost": lost, "delivered": len(delivered)}
