"""Setup status: whether a device has shown a message of the workspace yet, and when and where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .errors import translate_errors
from .pool import Executor
from .sql import queries

__all__ = ["WorkspaceSetup", "get_workspace_setup"]


@dataclass(frozen=True, slots=True)
class WorkspaceSetup:
    """`first_shown_at` is None until the first `shown` report a device made was accepted."""

    first_shown_at: datetime | None
    platform: str | None


@translate_errors
async def get_workspace_setup(db: Executor, workspace_id: int) -> WorkspaceSetup:
    row = await db.fetchrow(queries["get_workspace_setup"], workspace_id)
    if row is None:
        return WorkspaceSetup(None, None)
    return WorkspaceSetup(row["first_shown_at"], row["first_shown_platform"])
