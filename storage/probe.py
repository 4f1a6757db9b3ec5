"""The readiness probe: one trivial statement through the pool."""

from __future__ import annotations

from .errors import translate_errors
from .pool import Executor
from .sql import queries

__all__ = ["check_ready"]


@translate_errors
async def check_ready(db: Executor, limit_s: float = 2.0) -> None:
    """Raise `StorageUnavailable` unless the database answers within `limit_s` seconds."""
    await db.fetchval(queries["check_ready"], timeout=limit_s)
