"""A per-process cache of workspaces by site id and API key.

Why: a poll may cost one database round trip (the claim), so the workspace behind a site id
must come from memory. Entries live `ttl_s` seconds; a settings change made through this process
replaces its entry at once, and other processes see it within `ttl_s` (sooner once the
listener relays workspace notifications). Concurrent misses for one key share one query.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

import storage
from storage import Workspace

__all__ = ["WorkspaceCache", "update_workspace"]

_MAX_ENTRIES = 10_000


class WorkspaceCache:
    def __init__(self, pool: asyncpg.Pool, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._entries: dict[str, tuple[float, Workspace | None]] = {}
        self._loading: dict[str, asyncio.Future[Workspace | None]] = {}

    async def by_site_id(self, site_id: str) -> Workspace | None:
        return await self._get("site:" + site_id, lambda: storage.get_workspace_by_site_id(self._pool, site_id))

    async def by_api_key(self, api_key: str) -> Workspace | None:
        # Keyed by a digest so that no API key sits in memory longer than the request.
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        return await self._get("key:" + digest, lambda: storage.get_workspace_by_api_key(self._pool, api_key))

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
        device_attributes=device_attributes,
    )
    cache.put(workspace)
    return workspace, recalled
