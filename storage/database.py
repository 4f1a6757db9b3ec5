"""One way to a migrated database: the configured URL, or an embedded server under the data folder.

`mailslot serve`, every other CLI command and the app itself start here, so "use the URL or
start the embedded server, then migrate" is written once. An embedded server this call started
is stopped when the block ends; one that was already running (another command's) is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from .embedded import EmbeddedPostgres
from .errors import translate_errors
from .migrate import apply_migrations
from .sql import queries

__all__ = ["Database", "is_superuser", "migrated_database"]

log = logging.getLogger("mailslot.storage")


@dataclass(frozen=True, slots=True)
class Database:
    """A database ready for the gateway: its URL, the migrations this start applied, whether its role is a superuser."""

    url: str
    applied: tuple[str, ...]
    superuser: bool = False


@contextlib.contextmanager
def migrated_database(url: str, data_dir: Path, *, after_deploy: bool = False) -> Iterator[Database]:
    """The database at `url` (or, when empty, an embedded server under `data_dir`), migrated
    (after-deploy files too with `after_deploy`: storage/migrate.py).

    Blocking: call it from synchronous code, or from a worker thread of an event loop.
    """
    started: EmbeddedPostgres | None = None
    if not url:
        embedded = EmbeddedPostgres(data_dir)
        if not embedded.is_running():
            started = embedded
        url = embedded.start()
        log.info("embedded PostgreSQL under %s", embedded.cluster_dir)
    try:
        applied = asyncio.run(apply_migrations(url, after_deploy=after_deploy))
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        yield Database(url, tuple(applied), asyncio.run(is_superuser(url)))
    finally:
        if started is not None:
            started.stop()


@translate_errors
async def is_superuser(dsn: str) -> bool:
    """Whether `dsn` connects as a superuser: the gateway needs only to own its schema (docs/operations.md)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval(queries["check_superuser"]))
    finally:
        await conn.close()
