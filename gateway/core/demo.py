"""The demo workspace that `mailslot serve` creates on first start and /demo shows."""

from __future__ import annotations

import asyncpg

import storage
from storage import Workspace, WorkspaceCredentials, WorkspaceSetup

from ..errors import ErrorCode, NotFound

__all__ = ["DEMO_WORKSPACE", "create_demo_workspace", "demo_setup", "demo_workspace"]

DEMO_WORKSPACE = "demo"


async def demo_workspace(pool: asyncpg.Pool) -> Workspace:
    workspace = await storage.get_workspace_by_name(pool, DEMO_WORKSPACE)
    if workspace is None:
        raise NotFound(
            "no demo workspace: start with `mailslot serve --demo-workspace true`", code=ErrorCode.NO_DEMO_WORKSPACE
        )
    return workspace


async def demo_setup(pool: asyncpg.Pool) -> tuple[Workspace, WorkspaceSetup]:
    """The demo workspace and its setup status, which the demo page shows without credentials."""
    workspace = await demo_workspace(pool)
    return workspace, await storage.get_workspace_setup(pool, workspace.id)


async def create_demo_workspace(pool: asyncpg.Pool) -> WorkspaceCredentials | None:
    """The demo workspace's credentials when this call created it; None when it already existed.

    Its identity proof is `off` so that the demo page and a curl poll work without a backend;
    its setup status and the serve banner say what that allows.
    """
    if await storage.get_workspace_by_name(pool, DEMO_WORKSPACE) is not None:
        return None
    return await storage.create_workspace(pool, DEMO_WORKSPACE, identity_mode="off")
