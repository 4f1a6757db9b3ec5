"""Workspaces and their API keys."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

import asyncpg

from .errors import translate_errors
from .models import Workspace, WorkspaceCredentials
from .pool import Executor
from .sql import queries

__all__ = [
    "create_workspace",
    "get_workspace_by_api_key",
    "get_workspace_by_name",
    "get_workspace_by_site_id",
    "hash_api_key",
    "update_workspace",
]


def hash_api_key(api_key: str) -> bytes:
    """Keys are 256-bit random tokens, so SHA-256 needs no salt or stretching."""
    return hashlib.sha256(api_key.encode()).digest()


def _workspace(row: asyncpg.Record) -> Workspace:
    return Workspace(
        id=row["id"],
        name=row["name"],
        site_id=row["site_id"],
        identity_secret=row["identity_secret"],
        identity_mode=row["identity_mode"],
        in_app_enabled=row["in_app_enabled"],
        active_s=row["active_s"],
        inactive_s=row["inactive_s"],
        low_s=row["low_s"],
        recent_days=row["recent_days"],
        lease_s=row["lease_s"],
        rate_limits=row["rate_limits"],
        retention_days=row["retention_days"],
        device_attributes=tuple(row["device_attributes"]),
    )


@translate_errors
async def create_workspace(pool: asyncpg.Pool, name: str) -> WorkspaceCredentials:
    """Create a workspace with fresh site id, identity secret and API key."""
    api_key = "msk_" + secrets.token_urlsafe(32)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            queries["create_workspace"], name, "site_" + secrets.token_urlsafe(12), secrets.token_hex(32)
        )
        await conn.execute(queries["create_api_key"], row["id"], hash_api_key(api_key))
    return WorkspaceCredentials(workspace=_workspace(row), api_key=api_key)


@translate_errors
async def get_workspace_by_site_id(db: Executor, site_id: str) -> Workspace | None:
    row = await db.fetchrow(queries["get_workspace_by_site_id"], site_id)
    return _workspace(row) if row else None


@translate_errors
async def get_workspace_by_api_key(db: Executor, api_key: str) -> Workspace | None:
    row = await db.fetchrow(queries["get_workspace_by_key_hash"], hash_api_key(api_key))
    return _workspace(row) if row else None


@translate_errors
async def get_workspace_by_name(db: Executor, name: str) -> Workspace | None:
    row = await db.fetchrow(queries["get_workspace_by_name"], name)
    return _workspace(row) if row else None


@translate_errors
async def update_workspace(
    pool: asyncpg.Pool,
    workspace_id: int,
    *,
    in_app_enabled: bool | None = None,
    identity_mode: str | None = None,
    active_s: int | None = None,
    inactive_s: int | None = None,
    low_s: int | None = None,
    recent_days: int | None = None,
    lease_s: int | None = None,
    device_attributes: list[str] | None = None,
    now: datetime | None = None,
    rate_limits: dict[str, Any] | None = None,
    retention_days: int | None = None,
) -> tuple[Workspace, int]:
    """Change settings; returns the workspace and how many messages disabling recalled (at `now`).

    `rate_limits` is merged into the workspace's own: a limit set to None goes back to the default.

    The row lock comes first, in its own statement, so the update's snapshot includes every send
    that committed before it: none can slip in between the recall and the flag.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries["lock_workspace"], workspace_id)
        row = await conn.fetchrow(
            queries["update_workspace"],
            workspace_id, in_app_enabled, identity_mode, active_s, inactive_s, low_s, recent_days, lease_s,
            now, rate_limits, retention_days, device_attributes,
        )
    return _workspace(row), row["recalled"]
