"""`create_app(config)`: routes, middlewares and resource lifetimes; no I/O until startup.

Startup order (cleanup runs in reverse): database URL (embedded server, migrations), pool and
caches, devices' last polls, parked-poll registry, listener, expiry sweeper, retention sweeper.
On shutdown every parked poll is answered at once and /readyz turns 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

import storage

from ..config import Config
from ..core.barrier import Barrier
from ..core.clock import Clock
from ..core.device_polls import DevicePolls
from ..core.memory import Memory
from ..core.metrics import Metrics
from ..core.poll import Poller
from ..core.ratelimits import Limits, RateLimiter
from ..core.waiters import Waiters
from ..core.wakeups import Wakeups
from ..core.workspaces import WorkspaceCache
from .addresses import TrustedProxies
from .console.render import environment as console_templates
from .keys import (
    BARRIER,
    BARRIER_CHANNEL,
    CLOCK,
    CONFIG,
    CONSOLE_TEMPLATES,
    DATABASE_URL,
    DEVICE_POLLS,
    LISTENER,
    MEMORY,
    METRICS,
    POLLER,
    POOL,
    RATE_LIMITER,
    RNG,
    STOPPING,
    TRUSTED_PROXIES,
    WAITERS,
    WORKSPACES,
)
from .middlewares import gateway_middleware
from .routes import add_routes

__all__ = ["create_app"]

log = logging.getLogger("mailslot.gateway")


def create_app(config: Config, *, clock: Clock | None = None, rng: random.Random | None = None) -> web.Application:
    app = web.Application(
        client_max_size=max(config.max_body_bytes, config.max_batch_body_bytes),
        middlewares=[gateway_middleware],
    )
    app[CONFIG] = config
    app[CLOCK] = clock or Clock()
    app[RNG] = rng or random.Random()
    app[METRICS] = Metrics(multiprocess=config.metrics_dir is not None)
    app[STOPPING] = asyncio.Event()
    app[WAITERS] = Waiters(max_total=config.max_parked, max_per_person=config.max_parked_per_person)
    app[MEMORY] = Memory(config.quiet_ttl_s, max_entries=config.poll_cache_size, monotonic=app[CLOCK].monotonic)
    app[RATE_LIMITER] = rate_limiter(config, app[CLOCK], app[METRICS])
    app[TRUSTED_PROXIES] = TrustedProxies(config.trusted_proxies)
    app[CONSOLE_TEMPLATES] = console_templates()
    add_routes(app)
    app.cleanup_ctx.extend([
        metric_folds, database, pool_and_caches, device_polls, waiter_expiry, listener, expiry_sweeper,
        retention_sweeper,
    ])
    app.on_shutdown.append(answer_parked_polls)
    return app


def rate_limiter(config: Config, clock: Clock, metrics: Metrics) -> RateLimiter:
    """The process's buckets, timed by the app's clock so that tests move them instead of sleeping."""
    limits = Limits(
        address=config.rate_limit_address, site=config.rate_limit_site, person=config.rate_limit_person,
        events=config.rate_limit_events, api_key=config.rate_limit_api_key,
    )
    return RateLimiter(limits, enabled=config.rate_limits, refused=metrics.rate_limited, monotonic=clock.monotonic)


async def metric_folds(app: web.Application) -> AsyncIterator[None]:
    """Fold the request path's metric tallies every second, and last of all at cleanup."""
    async with _background(app[METRICS].run_folds(), "mailslot.metric_folds"):
        yield
    app[METRICS].fold()


async def database(app: web.Application) -> AsyncIterator[None]:
    """The configured database, or an embedded server started for this app (stopped at cleanup); migrated."""
    config = app[CONFIG]
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as stack:
        prepared = storage.migrated_database(config.database_url, config.data_dir)
        database = await loop.run_in_executor(None, stack.enter_context, prepared)
        app[DATABASE_URL] = database.url
        try:
            yield
        finally:
            await loop.run_in_executor(None, stack.close)


async def pool_and_caches(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    pool = await storage.create_pool(
        # Opened at start, not during a burst (docs/decisions/0036-connections-per-worker.md).
        app[DATABASE_URL], min_size=config.pool_min or config.pool_max, max_size=config.pool_max,
        acquire_timeout_s=config.db_acquire_timeout_s, statement_timeout_s=config.db_statement_timeout_s,
    )
    app[POOL] = pool
    app[WORKSPACES] = WorkspaceCache(pool, config.workspace_cache_s)
    app[BARRIER_CHANNEL] = storage.barrier_channel()
    app[BARRIER] = Barrier(functools.partial(_send_marker, app), metrics=app[METRICS])
    app[POLLER] = Poller(
        pool, app[CLOCK], app[RNG], claim_limit=config.claim_limit, waiters=app[WAITERS], metrics=app[METRICS],
        memory=app[MEMORY], barrier=app[BARRIER],
    )
    app[DEVICE_POLLS] = DevicePolls(pool, app[CLOCK], flush_interval_s=config.device_polls_flush_s)
    try:
        yield
    finally:
        await pool.close()


async def device_polls(app: web.Application) -> AsyncIterator[None]:
    """Write devices' last poll times every few seconds, and once more on the way out."""
    async with _background(app[DEVICE_POLLS].run(), "mailslot.device_polls"):
        yield
    try:
        await app[DEVICE_POLLS].flush()
    except Exception as exc:  # shutdown goes on whatever the database does: these times are not vital
        log.warning("writing devices' last polls at shutdown failed: %s", exc)


async def waiter_expiry(app: web.Application) -> AsyncIterator[None]:
    async with _background(app[WAITERS].run_expiry(), "mailslot.waiter_expiry"):
        yield


async def _send_marker(app: web.Application, token: str) -> None:
    """Barrier markers go on the listener's own connection (storage/listener.py, decision 0021)."""
    await app[LISTENER].notify_barrier(token)


async def listener(app: web.Application) -> AsyncIterator[None]:
    """LISTEN for sends from every process; wake the matching parked polls."""
    metrics = app[METRICS]
    config = app[CONFIG]
    wakeups = Wakeups(
        app[WAITERS], app[MEMORY], app[WORKSPACES], metrics,
        use_memory=config.poll_cache and config.quiet_ttl_s > 0, barrier=app[BARRIER],
    )
    the_listener = storage.Listener(
        app[DATABASE_URL], wakeups.on_notice, wakeups.on_connect,
        on_reconnect=metrics.listener_reconnects.inc, on_disconnect=wakeups.on_disconnect,
        barrier_channel=app[BARRIER_CHANNEL], on_barrier=wakeups.on_barrier,
        probe_interval_s=config.listener_probe_s,
    )
    app[LISTENER] = the_listener
    async with _background(the_listener.run(), "mailslot.listener"):
        async with asyncio.timeout(30):  # not wait_for, which on 3.11 can drop a stop that lands as it ends
            await the_listener.connected.wait()
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


async def retention_sweeper(app: web.Application) -> AsyncIterator[None]:
    """Delete final messages past their workspace's retention, so storage stays bounded."""
    interval = app[CONFIG].retention_interval_s

    async def sweep() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                swept = await storage.delete_retired_messages(app[POOL], now=app[CLOCK].now())
            except storage.StorageError as exc:
                log.warning("retention sweep failed: %s", exc)
                continue
            if swept.deleted:
                log.info("retention sweep deleted %d messages", swept.deleted)

    async with _background(sweep(), "mailslot.retention_sweeper"):
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
