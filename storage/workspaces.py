"""Workspaces, their API keys and identity secrets, and rotating both with a grace period."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

import asyncpg

from .errors import translate_errors
from .models import ApiKeyInfo, IdentitySecret, Workspace, WorkspaceCredentials
from .pool import Executor
from .sql import queries

__all__ = [
    "IDENTITY_MODES",
    "create_workspace",
    "get_api_key_workspace",
    "get_workspace_by_api_key",
    "get_workspace_by_name",
    "get_workspace_by_site_id",
    "hash_api_key",
    "list_api_keys",
    "new_kid",
    "rotate_api_key",
    "rotate_identity_secret",
    "update_workspace",
]

IDENTITY_MODES = ("off", "optional", "required")


def hash_api_key(api_key: str) -> bytes:
    """Keys are 256-bit random tokens, so SHA-256 needs no salt or stretching."""
    return hashlib.sha256(api_key.encode()).digest()


def new_kid() -> str:
    """A public name for an identity secret, which a token's header carries."""
    return "kid_" + secrets.token_hex(6)


def _secrets(values: list[dict[str, Any]] | None) -> tuple[IdentitySecret, ...]:
    return tuple(
        IdentitySecret(
            kid=v["kid"],
            secret=v["secret"],
            created_at=datetime.fromisoformat(v["created_at"]),
            expires_at=datetime.fromisoformat(v["expires_at"]) if v["expires_at"] else None,
        )
        for v in values or ()
    )


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
        identity_hash_allowed=row["identity_hash_allowed"],
        max_token_lifetime_s=row["max_token_lifetime_s"],
        identity_secrets=_secrets(row["identity_secrets"]),
    )


def _new_api_key() -> str:
    return "msk_" + secrets.token_urlsafe(32)


@translate_errors
async def create_workspace(pool: asyncpg.Pool, name: str, *, identity_mode: str = "required") -> WorkspaceCredentials:
    """Create a workspace with fresh site id, identity secret and API key.

    Identity proof is `required` unless the caller says otherwise: under first-device-wins a
    device that polls as someone else takes their messages away.
    """
    if identity_mode not in IDENTITY_MODES:
        raise ValueError(f"identity_mode must be one of {', '.join(IDENTITY_MODES)}, not {identity_mode!r}")
    api_key = _new_api_key()
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            queries["create_workspace"], name, "site_" + secrets.token_urlsafe(12), secrets.token_hex(32),
            identity_mode, new_kid(),
        )
        await conn.execute(queries["create_api_key"], row["id"], hash_api_key(api_key))
    return WorkspaceCredentials(workspace=_workspace(row), api_key=api_key)


@translate_errors
async def get_workspace_by_site_id(db: Executor, site_id: str) -> Workspace | None:
    row = await db.fetchrow(queries["get_workspace_by_site_id"], site_id)
    return _workspace(row) if row else None


@translate_errors
async def get_api_key_workspace(db: Executor, api_key: str) -> tuple[Workspace, datetime | None] | None:
    """The key's workspace and when the key stops working (None: no end), expired or not: a
    cache compares with its clock on every use, so a cached answer still stops at the right instant."""
    row = await db.fetchrow(queries["get_workspace_by_key_hash"], hash_api_key(api_key))
    return (_workspace(row), row["key_expires_at"]) if row else None


async def get_workspace_by_api_key(db: Executor, api_key: str, now: datetime | None = None) -> Workspace | None:
    """The workspace of a key that still works at `now` (None: this process's clock)."""
    found = await get_api_key_workspace(db, api_key)
    if found is None:
        return None
    workspace, expires_at = found
    if expires_at is not None and expires_at <= (now or datetime.now(UTC)):
        return None
    return workspace


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
    identity_hash_allowed: bool | None = None,
    max_token_lifetime_s: int | None = None,
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
            now, rate_limits, retention_days, device_attributes, identity_hash_allowed, max_token_lifetime_s,
        )
    return _workspace(row), row["recalled"]


@translate_errors
async def rotate_api_key(
    pool: asyncpg.Pool, workspace_id: int, grace_s: int, now: datetime | None = None
) -> tuple[str, ApiKeyInfo]:
    """A new API key (returned once, stored hashed); the others keep working `grace_s` seconds more."""
    api_key = _new_api_key()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries["lock_workspace"], workspace_id)
        row = await conn.fetchrow(queries["rotate_api_key"], workspace_id, hash_api_key(api_key), grace_s, now)
    return api_key, ApiKeyInfo(id=row["id"], created_at=row["created_at"], expires_at=None)


@translate_errors
async def list_api_keys(db: Executor, workspace_id: int, now: datetime | None = None) -> list[ApiKeyInfo]:
    rows = await db.fetch(queries["list_api_keys"], workspace_id, now)
    return [ApiKeyInfo(id=r["id"], created_at=r["created_at"], expires_at=r["expires_at"]) for r in rows]


@translate_errors
async def rotate_identity_secret(
    pool: asyncpg.Pool, workspace_id: int, grace_s: int, now: datetime | None = None
) -> Workspace:
    """A new identity secret, now the one `user_hash` uses; the others keep verifying `grace_s` seconds more."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries["lock_workspace"], workspace_id)
        await conn.execute(
            queries["rotate_identity_secret"], workspace_id, new_kid(), secrets.token_hex(32), grace_s, now
        )
        row = await conn.fetchrow(queries["get_workspace_by_id"], workspace_id)
    return _workspace(row)
