"""Every key of application and request state, in one place: what the app holds."""

from __future__ import annotations

import asyncio
import random

import asyncpg
from aiohttp import web

import storage
from storage import Workspace

from .clock import Clock
from .config import Config
from .metrics import Metrics
from .poll import Poller
from .quiet import QuietPeople
from .waiters import Waiters
from .workspaces import WorkspaceCache

__all__ = [
    "CLOCK",
    "CONFIG",
    "DATABASE_URL",
    "LISTENER",
    "METRICS",
    "POLLER",
    "POOL",
    "QUIET",
    "REQUEST_ID",
    "RNG",
    "STOPPING",
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
WAITERS = web.AppKey("mailslot.waiters", Waiters)
QUIET = web.AppKey("mailslot.quiet", QuietPeople)
METRICS = web.AppKey("mailslot.metrics", Metrics)
LISTENER = web.AppKey("mailslot.listener", storage.Listener)
# Set when shutdown starts: /readyz answers 503 so a load balancer stops sending traffic.
STOPPING = web.AppKey("mailslot.stopping", asyncio.Event)

# The workspace the request's credentials belong to, set by the auth middleware.
WORKSPACE = web.RequestKey("mailslot.workspace", Workspace)
REQUEST_ID = web.RequestKey("mailslot.request_id", str)
