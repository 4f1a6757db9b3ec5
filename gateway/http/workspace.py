"""The workspace in the server API: its settings, and whether a device has shown anything yet."""

from __future__ import annotations

from aiohttp import web

from ..core import setup, workspaces
from .keys import CLOCK, POOL, RATE_LIMITER, WORKSPACE, WORKSPACES
from .schemas import WorkspacePatch, parse_body
from .views import json_response, setup_view, workspace_view

__all__ = ["get_workspace", "patch_workspace", "workspace_setup"]


async def get_workspace(request: web.Request) -> web.Response:
    workspace = request[WORKSPACE]
    return json_response(workspace_view(workspace, request.app[RATE_LIMITER].for_workspace(workspace)))


async def patch_workspace(request: web.Request) -> web.Response:
    patch = parse_body(await request.read(), WorkspacePatch)
    intervals = patch.intervals
    workspace, recalled = await workspaces.update_workspace(
        request.app[POOL],
        request.app[WORKSPACES],
        request[WORKSPACE].id,
        in_app_enabled=patch.in_app_enabled,
        identity_mode=patch.identity_mode,
        active_s=intervals.active_s if intervals else None,
        inactive_s=intervals.inactive_s if intervals else None,
        low_s=intervals.low_s if intervals else None,
        recent_days=intervals.recent_days if intervals else None,
        lease_s=patch.lease_s,
        rate_limits=patch.rate_limits.changes() if patch.rate_limits else None,
        retention_days=patch.retention_days,
        device_attributes=patch.device_attribute_names(),
        now=request.app[CLOCK].now(),
    )
    limits = request.app[RATE_LIMITER].for_workspace(workspace)
    return json_response({**workspace_view(workspace, limits), "recalled": recalled})


async def workspace_setup(request: web.Request) -> web.Response:
    return json_response(setup_view(await setup.workspace_setup(request.app[POOL], request[WORKSPACE].id)))
