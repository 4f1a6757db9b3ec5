"""The asyncpg pool: orjson codecs for json/jsonb and a statement cache that fits every query."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from .errors import translate_errors
from .sql import queries

__all__ = ["Executor", "create_pool"]

# Anything with fetch/fetchrow/fetchval/execute: a pool for single statements, a connection
# inside a transaction.
Executor = asyncpg.Pool | asyncpg.Connection


def _dumps(value: Any) -> str:
    # asyncpg's text codec wants str; orjson returns bytes.
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (RESET ALL, UNLISTEN *, …).

    That query is a second round trip on every release, i.e. on every poll. Pool connections
    never LISTEN, take advisory locks or change settings (the listener and the migrator use
    connections of their own), so there is no session state to reset; asyncpg still rolls back
    any transaction left open before calling this.
    """


@translate_errors
async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, command_timeout: float = 30.0
) -> asyncpg.Pool:
    """Open a pool whose connections each prepare every statement once, on first use."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=command_timeout,
        statement_cache_size=max(100, 2 * len(queries)),
        server_settings={"application_name": "mailslot"},
    )
    return pool
