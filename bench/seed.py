"""Setting up a scenario's data: a workspace through the operator's CLI, people in bulk through storage.

These are the two places where the bench does not go through the gateway's HTTP API: an operator
creates workspaces with `mailslot workspace create`, and `storage.import_people` creates a million
people in seconds where a million identify calls would take minutes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import storage

__all__ = ["Credentials", "create_workspace", "import_people"]


@dataclass(frozen=True, slots=True)
class Credentials:
    name: str
    site_id: str
    api_key: str
    workspace_id: int


def create_workspace(database_url: str, name: str) -> Credentials:
    """A new workspace via `python -m gateway workspace create NAME --json`."""
    completed = subprocess.run(
        # Identity proof off: the scenarios measure the poll path as RESULTS.md always has, and
        # their devices poll as made-up people with no backend to sign proofs.
        [sys.executable, "-m", "gateway", "workspace", "create", name, "--json", "--database-url", database_url,
         "--log-level", "WARNING", "--identity-mode", "off"],
        capture_output=True, text=True, timeout=120,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"workspace create failed ({completed.returncode}):\n{completed.stderr}")
    values = json.loads(completed.stdout.strip().splitlines()[-1])

    async def workspace_id() -> int:
        pool = await storage.create_pool(database_url, min_size=1, max_size=1)
        try:
            workspace = await storage.get_workspace_by_site_id(pool, values["site_id"])
        finally:
            await pool.close()
        assert workspace is not None
        return workspace.id

    return Credentials(name, values["site_id"], values["api_key"], asyncio.run(workspace_id()))


def import_people(
    database_url: str,
    workspace_id: int,
    external_ids: Sequence[str],
    *,
    chunk: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Create these people, `chunk` per statement, two statements at a time, then vacuum them."""

    async def run() -> None:
        pool = await storage.create_pool(database_url, min_size=2, max_size=2, statement_timeout_s=600)
        try:
            done = 0
            parts = [list(external_ids[i:i + chunk]) for i in range(0, len(external_ids), chunk)]
            for pair in (parts[i:i + 2] for i in range(0, len(parts), 2)):
                await asyncio.gather(*(storage.import_people(pool, workspace_id, part) for part in pair))
                done += sum(len(part) for part in pair)
                if progress is not None:
                    progress(done)
            # Settle the new rows, as days of sign-ups would have: until each page is vacuumed (or
            # read once), the first read sets its hint bits, which with data checksums writes a
            # full-page image to the WAL, so the measured run's claims and census would pay the
            # seeding's WAL (s4's parked devices got 503s behind it).
            await pool.execute("VACUUM (ANALYZE) people")
        finally:
            await pool.close()

    asyncio.run(run())
