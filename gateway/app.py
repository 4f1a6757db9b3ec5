"""`create_app(config)`: routes, middlewares and resource lifetimes; no I/O until startup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator

from aiohttp import web

import storage

from .clock import Clock
from .config import Config
from .keys import CLOCK, CONFIG, DATABASE_URL, POLLER, POOL, RNG, WORKSPACES
from .middlewares import auth_middleware, cors_middleware, error_middleware, request_id_middleware
from .poll import Poller
from .routes import add_routes
from .workspaces import WorkspaceCache

__all__ = ["create_app"]

log = logging.getLogger("mailslot.gateway")


def create_app(config: Config, *, clock: Clock | None = None, rng: random.Random | None = None) -> web.Application:
    """Build the application; startup brings up the database, pool, poller and sweeper in that order."""
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[request_id_middleware, cors_middleware, error_middleware, auth_middleware],
    )
    app[CONFIG] = config
    app[CLOCK] = clock or Clock()
    app[RNG] = rng or random.Random()
    add_routes(app)
    app.cleanup_ctx.extend([database, pool_and_caches, expiry_sweeper])
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    """The database URL: the configured one, or an embedded server's; migrated before use."""
    config = app[CONFIG]
    embedded: storage.EmbeddedPostgres | None = None
    url = config.database_url
    if not url:
        embedded = storage.EmbeddedPostgres(config.data_dir)
        url = await asyncio.get_running_loop().run_in_executor(None, embedded.start)
    applied = await storage.apply_migrations(url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    app[DATABASE_URL] = url
    yield


async def pool_and_caches(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    pool = await storage.create_pool(app[DATABASE_URL], min_size=config.pool_min, max_size=config.pool_max)
    app[POOL] = pool
    app[WORKSPACES] = WorkspaceCache(pool, config.workspace_cache_s)
    app[POLLER] = Poller(pool, app[CLOCK], app[RNG], config.claim_limit)
    try:
        yield
    finally:
        await pool.close()


async def expiry_sweeper(app: web.Application) -> AsyncIterator[None]:
    """Record overdue messages as expired even for people who never poll again."""
    interval = app[CONFIG].expire_interval_s

    async def sweep() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                while await storage.expire_messages(app[POOL], now=app[CLOCK].now()) > 0:
                    pass
            except storage.StorageError as exc:
                log.warning("expiry sweep failed: %s", exc)

    task = asyncio.create_task(sweep(), name="mailslot.expiry_sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
