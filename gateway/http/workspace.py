"""The workspace in the server API: its settings and credentials, and whether a device has shown anything yet."""

from __future__ import annotations

from aiohttp import web

from ..core import setup, workspaces
from .keys import CLOCK, POOL, RATE_LIMITER, WORKSPACE, WORKSPACES
from .schemas import RotateRequest, WorkspacePatch, parse_body
from .views import credentials_view, json_response, setup_view, workspace_view

__all__ = ["get_workspace", "patch_workspace", "rotate_api_key", "rotate_identity_secret", "workspace_setup"]


async def get_workspace(request: web.Request) -> web.Response:
    workspace = request[WORKSPACE]
    status = await workspaces.credentials_status(request.app[POOL], workspace, request.app[CLOCK].now())
    limits = request.app[RATE_LIMITER].for_workspace(workspace)
    return json_response({**workspace_view(workspace, limits), **credentials_view(status)})


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
        identity_hash_allowed=patch.identity_hash_allowed,
        max_token_lifetime_s=patch.max_token_lifetime_s,
        now=request.app[CLOCK].now(),
    )
    limits = request.app[RATE_LIMITER].for_workspace(workspace)
    return json_response({**workspace_view(workspace, limits), "recalled": recalled})


async def rotate_api_key(request: web.Request) -> web.Response:
    """A new API key, shown once in this answer; the old ones keep working for `grace_s`."""
    body = parse_body(await request.read(), RotateRequest)
    rotated = await workspaces.rotate_api_key(
        request.app[POOL], request.app[WORKSPACES], request[WORKSPACE], body.grace_s, request.app[CLOCK].now(),
    )
    return json_response(
        {
            "api_key": rotated.api_key,
            "id": rotated.key.id,
            "created_at": rotated.key.created_at,
            "api_keys": credentials_view(rotated.status)["api_keys"],
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def rotate_identity_secret(request: web.Request) -> web.Response:
    """A new identity secret, shown once in this answer; the old ones keep verifying for `grace_s`."""
    body = parse_body(await request.read(), RotateRequest)
    workspace, status = await workspaces.rotate_identity_secret(
        request.app[POOL], request.app[WORKSPACES], request[WORKSPACE].id, body.grace_s, request.app[CLOCK].now(),
    )
    newest = workspace.identity_secrets[0]
    return json_response(
        {
            "kid": newest.kid,
            "identity_secret": newest.secret,
            "created_at": newest.created_at,
            "identity_secrets": credentials_view(status)["identity_secrets"],
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def workspace_setup(request: web.Request) -> web.Response:
    workspace = request[WORKSPACE]
    status = await setup.workspace_setup(request.app[POOL], workspace.id)
    return json_response(setup_view(status, workspace.identity_mode))
