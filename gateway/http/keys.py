"""Every key of application and request state, in one place: what the app holds."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import jinja2
from aiohttp import web

import storage
from storage import ConsoleSession, Workspace

from ..config import Config
from ..core.barrier import Barrier
from ..core.clock import Clock
from ..core.device_polls import DevicePolls
from ..core.memory import Memory
from ..core.metrics import Metrics
from ..core.poll import Poller
from ..core.ratelimits import RateLimiter
from ..core.waiters import Waiters
from ..core.workspaces import WorkspaceCache
from .access import Access
from .addresses import TrustedProxies

__all__ = [
    "BARRIER",
    "BARRIER_CHANNEL",
    "CLOCK",
    "CONFIG",
    "CONSOLE_SESSION",
    "CONSOLE_TEMPLATES",
    "CONSOLE_TOKEN",
    "DATABASE_URL",
    "DEVICE_POLLS",
    "LISTENER",
    "MEMORY",
    "METRICS",
    "OPENAPI",
    "POLLER",
    "POOL",
    "RATE_LIMITER",
    "RNG",
    "ROUTE_ACCESS",
    "STOPPING",
    "TRUSTED_PROXIES",
    "WAITERS",
    "WORKSPACE",
    "WORKSPACES",
]

CONFIG = web.AppKey("mailslot.config", Config)
CLOCK = web.AppKey("mailslot.clock", Clock)
RNG = web.AppKey("mailslot.rng", random.Random)
DATABASE_URL = web.AppKey("mailslot.database_url", str)
POOL = web.AppKey("mailslot.pool", asyncpg.Pool)
WORKSPACES = web.AppKey("mailslot.workspaces", WorkspaceCache)
POLLER = web.AppKey("mailslot.poller", Poller)
# Devices' last poll times, noted in memory and written in batches (the console reads them).
DEVICE_POLLS = web.AppKey("mailslot.device_polls", DevicePolls)
WAITERS = web.AppKey("mailslot.waiters", Waiters)
MEMORY = web.AppKey("mailslot.memory", Memory)
# The commit-order barrier short polls wait on, and this process's own channel for its markers.
BARRIER = web.AppKey("mailslot.barrier", Barrier)
BARRIER_CHANNEL = web.AppKey("mailslot.barrier_channel", str)
METRICS = web.AppKey("mailslot.metrics", Metrics)
RATE_LIMITER = web.AppKey("mailslot.rate_limiter", RateLimiter)
TRUSTED_PROXIES = web.AppKey("mailslot.trusted_proxies", TrustedProxies)
LISTENER = web.AppKey("mailslot.listener", storage.Listener)
# Who may call each route (routes.py declares it; the auth and CORS middlewares read it).
ROUTE_ACCESS = web.AppKey("mailslot.route_access", dict[web.AbstractRoute, Access])
# The OpenAPI document, encoded once when the routes are added.
OPENAPI = web.AppKey("mailslot.openapi", bytes)
# Set when shutdown starts: /readyz answers 503 so a load balancer stops sending traffic.
STOPPING = web.AppKey("mailslot.stopping", asyncio.Event)

# The console's page templates (gateway/static/console/templates), loaded once per app.
CONSOLE_TEMPLATES = web.AppKey("mailslot.console_templates", jinja2.Environment)

# The console session a cookie names and its token, set by the console middleware.
CONSOLE_SESSION = web.RequestKey("mailslot.console_session", ConsoleSession)
CONSOLE_TOKEN = web.RequestKey("mailslot.console_token", str)
# The workspace the request's credentials belong to, set by the auth middleware.
WORKSPACE = web.RequestKey("mailslot.workspace", Workspace)
