"""A per-process cache of workspaces by site id and API key, and the workspace's settings and
credentials: changing them, rotating API keys and identity secrets.

Why: a poll may cost one database round trip (the claim), so the workspace behind a site id
must come from memory. Entries live `ttl_s` seconds; a settings change made through this process
replaces its entry at once, and other processes see it within `ttl_s` (sooner once the
listener relays workspace notifications). Concurrent misses for one key share one query.

A key entry keeps the key's end of grace and is compared with the clock on every use, so a
rotated-out key stops at its instant in every process that has read the rotation; a process that
has not (listener down) reads it within `ttl_s`. The same holds for identity secrets, whose
`expires_at` travels in the cached workspace.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

import storage
from storage import ApiKeyInfo, IdentitySecret, Workspace

__all__ = [
    "RotatedKey",
    "WorkspaceCache",
    "WorkspaceCredentialsStatus",
    "credentials_status",
    "rotate_api_key",
    "rotate_identity_secret",
    "update_workspace",
]


_MAX_ENTRIES = 10_000


class WorkspaceCache:
    def __init__(self, pool: asyncpg.Pool, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._entries: dict[str, tuple[float, Workspace | None]] = {}
        self._loading: dict[str, asyncio.Future[Workspace | None]] = {}
        # When each cached key (by digest) stops working; absent: no end.
        self._key_ends: dict[str, datetime] = {}

    async def by_site_id(self, site_id: str) -> Workspace | None:
        return await self._get("site:" + site_id, lambda: storage.get_workspace_by_site_id(self._pool, site_id))

    async def by_api_key(self, api_key: str, now: datetime | None = None) -> Workspace | None:
        """The key's workspace while the key works at `now` (None: this process's clock)."""
        # Keyed by a digest so that no API key sits in memory longer than the request.
        digest = hashlib.sha256(api_key.encode()).hexdigest()

        async def load() -> Workspace | None:
            found = await storage.get_api_key_workspace(self._pool, api_key)
            if found is None:
                return None
            workspace, ends = found
            if ends is None:
                self._key_ends.pop(digest, None)
            else:
                self._key_ends[digest] = ends
            return workspace

        workspace = await self._get("key:" + digest, load)
        ends = self._key_ends.get(digest)
        if workspace is not None and ends is not None and ends <= (now or datetime.now(UTC)):
            return None
        return workspace

    def put(self, workspace: Workspace) -> None:
        """Replace every cached copy of this workspace (after a settings change)."""
        expires = self._monotonic() + self._ttl_s
        for key, (_, cached) in list(self._entries.items()):
            if cached is not None and cached.id == workspace.id:
                self._entries[key] = (expires, workspace)
        self._entries["site:" + workspace.site_id] = (expires, workspace)

    def forget(self, workspace_id: int | None = None) -> None:
        """Drop one workspace (or all) so the next request reads the database."""
        if workspace_id is None:
            self._entries.clear()
            self._key_ends.clear()
            return
        for key, (_, cached) in list(self._entries.items()):
            if cached is not None and cached.id == workspace_id:
                del self._entries[key]

    async def _get(self, key: str, load: Callable[[], Awaitable[Workspace | None]]) -> Workspace | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._monotonic():
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Workspace | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            workspace = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters may be none
            raise
        else:
            future.set_result(workspace)
        finally:
            del self._loading[key]
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
            self._key_ends.clear()
        self._entries[key] = (self._monotonic() + self._ttl_s, workspace)
        return workspace


async def update_workspace(
    pool: asyncpg.Pool,
    cache: WorkspaceCache,
    workspace_id: int,
    *,
    in_app_enabled: bool | None = None,
    identity_mode: str | None = None,
    active_s: int | None = None,
    inactive_s: int | None = None,
    low_s: int | None = None,
    recent_days: int | None = None,
    lease_s: int | None = None,
    rate_limits: dict[str, Any] | None = None,
    device_attributes: list[str] | None = None,
    identity_hash_allowed: bool | None = None,
    max_token_lifetime_s: int | None = None,
    now: datetime | None = None,
    retention_days: int | None = None,
) -> tuple[Workspace, int]:
    """Change the settings given (None leaves one as it is); disabling recalls every queued and
    offered message; `rate_limits` merges into the workspace's own (a None limit goes back to the
    server's). Returns the workspace and how many messages were recalled."""
    workspace, recalled = await storage.update_workspace(
        pool, workspace_id, in_app_enabled=in_app_enabled, identity_mode=identity_mode,
        active_s=active_s, inactive_s=inactive_s, low_s=low_s, recent_days=recent_days,
        lease_s=lease_s, now=now, rate_limits=rate_limits, retention_days=retention_days,
        device_attributes=device_attributes, identity_hash_allowed=identity_hash_allowed,
        max_token_lifetime_s=max_token_lifetime_s,
    )
    cache.put(workspace)
    return workspace, recalled


@dataclass(frozen=True, slots=True)
class WorkspaceCredentialsStatus:
    """What a workspace accepts at `now`: API keys and identity secrets, by id and kid, with their ends."""

    api_keys: list[ApiKeyInfo]
    identity_secrets: list[IdentitySecret]


async def credentials_status(
    pool: asyncpg.Pool, workspace: Workspace, now: datetime | None
) -> WorkspaceCredentialsStatus:
    keys = await storage.list_api_keys(pool, workspace.id, now)
    at = now or datetime.now(UTC)
    return WorkspaceCredentialsStatus(keys, [s for s in workspace.identity_secrets if s.active(at)])


@dataclass(frozen=True, slots=True)
class RotatedKey:
    """A new API key, shown once, and every key the workspace now accepts."""

    api_key: str
    key: ApiKeyInfo
    status: WorkspaceCredentialsStatus


async def rotate_api_key(
    pool: asyncpg.Pool, cache: WorkspaceCache, workspace: Workspace, grace_s: int, now: datetime | None,
) -> RotatedKey:
    """A new API key; the others keep working `grace_s` seconds, so deployments can switch over."""
    api_key, key = await storage.rotate_api_key(pool, workspace.id, grace_s, now)
    cache.forget(workspace.id)  # cached key entries must learn their end of grace
    return RotatedKey(api_key, key, await credentials_status(pool, workspace, now))


async def rotate_identity_secret(
    pool: asyncpg.Pool, cache: WorkspaceCache, workspace_id: int, grace_s: int, now: datetime | None,
) -> tuple[Workspace, WorkspaceCredentialsStatus]:
    """A new identity secret for tokens and `user_hash`; the others keep verifying `grace_s` seconds."""
    workspace = await storage.rotate_identity_secret(pool, workspace_id, grace_s, now)
    cache.put(workspace)
    return workspace, await credentials_status(pool, workspace, now)
