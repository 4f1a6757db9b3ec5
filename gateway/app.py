"""`create_app(config)`: routes, middlewares and resource lifetimes; no I/O until startup.

Startup order (cleanup runs in reverse): database URL (embedded server, migrations), pool and
caches, parked-poll registry, listener, expiry sweeper. On shutdown every parked poll is
answered at once and /readyz turns 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

import storage

from .clock import Clock
from .config import Config
from .keys import (
    CLOCK,
    CONFIG,
    DATABASE_URL,
    LISTENER,
    METRICS,
    POLLER,
    POOL,
    QUIET,
    RNG,
    STOPPING,
    WAITERS,
    WORKSPACES,
)
from .metrics import Metrics
from .middlewares import (
    auth_middleware,
    cors_middleware,
    error_middleware,
    metrics_middleware,
    request_id_middleware,
)
from .poll import Poller
from .quiet import QuietPeople
from .routes import add_routes
from .waiters import Waiters, Wake
from .workspaces import WorkspaceCache

__all__ = ["create_app"]

log = logging.getLogger("mailslot.gateway")


def create_app(config: Config, *, clock: Clock | None = None, rng: random.Random | None = None) -> web.Application:
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[
            request_id_middleware, metrics_middleware, cors_middleware, error_middleware, auth_middleware,
        ],
    )
    app[CONFIG] = config
    app[CLOCK] = clock or Clock()
    app[RNG] = rng or random.Random()
    app[METRICS] = Metrics(multiprocess=config.metrics_dir is not None)
    app[STOPPING] = asyncio.Event()
    app[WAITERS] = Waiters(max_total=config.max_parked, max_per_person=config.max_parked_per_person)
    app[QUIET] = QuietPeople(config.quiet_ttl_s)
    add_routes(app)
    app.cleanup_ctx.extend([database, pool_and_caches, waiter_expiry, listener, expiry_sweeper])
    app.on_shutdown.append(answer_parked_polls)
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    """The database URL: the configured one, or an embedded server's (left running); migrated."""
    config = app[CONFIG]
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
    app[POLLER] = Poller(
        pool, app[CLOCK], app[RNG], claim_limit=config.claim_limit, waiters=app[WAITERS], metrics=app[METRICS],
        quiet=app[QUIET],
    )
    try:
        yield
    finally:
        await pool.close()


async def waiter_expiry(app: web.Application) -> AsyncIterator[None]:
    async with _background(app[WAITERS].run_expiry(), "mailslot.waiter_expiry"):
        yield


async def listener(app: web.Application) -> AsyncIterator[None]:
    """LISTEN for sends from every process; wake the matching parked polls."""
    waiters, metrics, workspaces, quiet = app[WAITERS], app[METRICS], app[WORKSPACES], app[QUIET]

    def on_notice(notice: storage.Notice) -> None:
        if isinstance(notice, storage.WorkspaceNotice):
            workspaces.forget(notice.workspace)
            quiet.forget_workspace(notice.workspace)
            return
        if notice.at is not None:
            metrics.notification_lag.observe(max(0.0, time.time() - notice.at))
        # Forget before waking: a woken poll must not find a stale "nothing pending".
        if isinstance(notice, storage.BroadcastNotice):
            quiet.forget_workspace(notice.workspace)
            waiters.wake_workspace(notice.workspace)
        else:
            quiet.forget(notice.workspace, notice.keys)
            waiters.wake(notice.workspace, notice.keys)

    def on_connect() -> None:
        # Anything sent while the connection was down was not heard: every held poll claims again.
        quiet.clear()
        quiet.enabled = app[CONFIG].quiet_ttl_s > 0
        waiters.wake_all(Wake.RECONNECT)
        workspaces.forget()

    def on_disconnect() -> None:
        # Without notifications nothing here can be trusted: every poll claims until reconnected.
        quiet.enabled = False
        quiet.clear()

    the_listener = storage.Listener(
        app[DATABASE_URL], on_notice, on_connect,
        on_reconnect=metrics.listener_reconnects.inc, on_disconnect=on_disconnect,
        probe_interval_s=app[CONFIG].listener_probe_s,
    )
    app[LISTENER] = the_listener
    async with _background(the_listener.run(), "mailslot.listener"):
        await asyncio.wait_for(the_listener.connected.wait(), 30)
        yield


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

    async with _background(sweep(), "mailslot.expiry_sweeper"):
        yield


async def answer_parked_polls(app: web.Application) -> None:
    app[STOPPING].set()
    answered = app[WAITERS].close()
    log.info("shutting down: answered %d parked polls", answered)


@contextlib.asynccontextmanager
async def _background(coro: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run a task for as long as the app runs; cancel and await it at cleanup."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
