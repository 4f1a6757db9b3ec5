"""What PostgreSQL did during a phase of a scenario: commits and WAL flushes, read from its
cumulative statistics before and after (the orchestrator's one-off reads, like the seed's).

Issue 12's s3 is bound by commits per second and the WAL lock, not by fsync itself, so the
figure to compare between commits is commits (and WAL flushes) per delivered message. Backends
publish their counters when a transaction ends at most once a second, and an idle backend within
10 s: read `after` once the phase has been idle that long, or the last second is missing.
"""

from __future__ import annotations

import asyncio

import asyncpg

__all__ = ["FLUSH_S", "activity", "per_unit"]

# PostgreSQL's idle backends publish pending statistics within this (IDLE_STATS_UPDATE_TIMEOUT).
FLUSH_S = 11.0


async def _read(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        counts = dict(await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()"))
        counts.update(await conn.fetchrow("SELECT wal_records, wal_bytes::bigint AS wal_bytes FROM pg_stat_wal"))
        try:  # PostgreSQL 18 counts WAL writes and flushes in pg_stat_io
            counts.update(await conn.fetchrow(
                "SELECT coalesce(sum(writes), 0)::bigint AS wal_writes, coalesce(sum(fsyncs), 0)::bigint AS wal_fsyncs"
                " FROM pg_stat_io WHERE object = 'wal'"))
        except asyncpg.PostgresError:
            counts.update(await conn.fetchrow(
                "SELECT wal_write AS wal_writes, wal_sync AS wal_fsyncs FROM pg_stat_wal"))
        return {k: int(v) for k, v in counts.items()}
    finally:
        await conn.close()


def activity(database_url: str) -> dict[str, int]:
    """The cluster's cumulative commits (of this database), WAL records, bytes, writes and flushes."""
    return asyncio.run(_read(database_url))


def per_unit(before: dict[str, int], after: dict[str, int], units: int) -> dict[str, float]:
    """Each counter's growth, and its growth per unit (a delivered message)."""
    grown = {k: after[k] - before[k] for k in before}
    return {**{k: float(v) for k, v in grown.items()},
            **{f"{k}_per_unit": round(v / units, 3) if units else 0.0 for k, v in grown.items()}}
