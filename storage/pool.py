"""The asyncpg pool: orjson codecs for json/jsonb, a statement cache that fits every query, and
timeouts that fail fast.

A stalled database must become an answer (503 with Retry-After), not a hung request: waiting
for a free connection is bounded by `acquire_timeout_s`, every statement by
`statement_timeout_s` (asyncpg's client-side `command_timeout`, which also fires when the server
is stopped and cannot cancel anything itself). Bulk statements pass their own longer `timeout=`.
Held polls park outside any connection, so neither bound limits how long a poll may be held.

A connection prepares the statements of a woken held poll (its claim, and the report of what it
showed) when it opens, not on first use: there a statement costs a Parse and, for a statement
with array parameters, asyncpg's type introspection (three more round trips), each stretched by
a busy event loop, and the polls woken when sends begin meet every connection's first use at
once (bench s7: connections held 0.5-1.2 s, acquires waiting up to 0.9 s of the 2 s bound;
docs/decisions/0036-connections-per-worker.md).

Failover (docs/decisions/0024-failover.md): a multi-host DSN with `target_session_attrs=read-write`
makes every new connection find the current primary. A connection that answers "read-only"
(SQLSTATE 25006) still reaches a node that was demoted, and so do its siblings: the whole pool is
expired, so that each connection is replaced on its next use, by one to the new primary.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from .errors import is_read_only, translate_errors
from .sql import queries

__all__ = ["ACQUIRE_TIMEOUT_S", "STATEMENT_TIMEOUT_S", "WARM_STATEMENTS", "Executor", "create_pool"]

# Defaults: a few seconds, well under what a device or a backend waits for an answer.
ACQUIRE_TIMEOUT_S = 2.0
STATEMENT_TIMEOUT_S = 5.0

# Prepared on every new connection: what a woken held poll runs. Not the send statement: coalesced
# sends keep one or two connections of a worker busy, which are warm after their first send.
WARM_STATEMENTS = (queries["claim_messages"], queries["claim_message_batch"], queries["record_device_events"])

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
    await _prepare(conn, WARM_STATEMENTS)


async def _prepare(conn: asyncpg.Connection, statements: tuple[str, ...]) -> None:
    """Put statements into the connection's statement cache, where `fetch` finds them prepared.

    asyncpg has no public call for this: `_get_statement` is what `fetch` itself calls. Without
    it (a later asyncpg), `prepare` still introspects the types, the larger part; only the Parse
    then waits for first use.
    """
    get_statement = getattr(conn, "_get_statement", None)
    for statement in statements:
        if get_statement is not None:
            await get_statement(statement, None)
        else:
            await conn.prepare(statement)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (RESET ALL, UNLISTEN *, …).

    That query is a second round trip on every release, i.e. on every poll. Pool connections
    never LISTEN, take advisory locks or change settings (the listener and the migrator use
    connections of their own), so there is no session state to reset; asyncpg still rolls back
    any transaction left open before calling this.
    """


class _BoundedPool(asyncpg.Pool):  # type: ignore[misc]
    """A pool whose every acquire, explicit or inside `pool.fetch()` and friends, is bounded.

    asyncpg's `Pool.fetch` and the like acquire without a timeout, so the bound is the default
    of `acquire` itself. The same bound then applies to the release (asyncpg records it).
    """

    __slots__ = ("_acquire_timeout_s", "claim_queue", "report_queue", "send_queue")

    def __init__(self, *args: Any, acquire_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout_s = acquire_timeout_s
        # The single sends waiting for this pool's statement of their workspace (storage/send_queue.py);
        # made by storage/messages.py on first use.
        self.send_queue: Any = None
        # The same for claims (storage/claim_queue.py), made on first use.
        self.claim_queue: Any = None
        # The device reports waiting for this pool's report statement of their workspace (decision 0038).
        self.report_queue: Any = None

    def acquire(self, *, timeout: float | None = None) -> Any:
        return _AcquireContext(self, self._acquire_timeout_s if timeout is None else timeout)


class _AcquireContext(asyncpg.pool.PoolAcquireContext):  # type: ignore[misc]
    """asyncpg's acquire context, which also sees the error that left the block: on "read-only", expire the pool."""

    __slots__ = ()

    async def __aexit__(self, exc_type: Any = None, exc: BaseException | None = None, tb: Any = None) -> None:
        if exc is not None and is_read_only(exc):
            await self.pool.expire_connections()
        await super().__aexit__(exc_type, exc, tb)


@translate_errors
async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    acquire_timeout_s: float = ACQUIRE_TIMEOUT_S,
    statement_timeout_s: float = STATEMENT_TIMEOUT_S,
) -> asyncpg.Pool:
    """Open a pool whose connections each prepare every statement once, on first use."""
    pool = _BoundedPool(
        dsn,
        acquire_timeout_s=acquire_timeout_s,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=statement_timeout_s,
        statement_cache_size=max(100, 2 * len(queries)),
        server_settings={"application_name": "mailslot"},
    )
    await pool
    return pool
