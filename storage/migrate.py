"""Apply the numbered `.sql` files in `migrations/` in order, once each, under an advisory lock.

Rules: file names are `NNNN_description.sql` and sort in run order; each file runs in its own
transaction and is recorded with its SHA-256 in `schema_migrations`; a recorded file whose text
changed is an error (fix forward with a new file, never edit a merged one).

A file named `NNNN_description_after_deploy.sql` removes something the previous release still
needs (the contract half of a change old and new gateways must both survive during a rolling
deploy). A gateway starting on a database that is already in use leaves it pending, so the
older gateways still running keep working; `mailslot migrate --after-deploy` applies it once every
gateway runs this release. A new, empty database has no older gateway, and gets it at once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from .errors import MigrationError, translate_errors

__all__ = ["Migration", "apply_migrations", "list_migrations"]

# "mailslot" as a bigint: every gateway process and CLI run serialises on this one key.
ADVISORY_LOCK_KEY = int.from_bytes(b"mailslot", "big") & 0x7FFF_FFFF_FFFF_FFFF
log = logging.getLogger("mailslot.storage.migrate")
_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def after_deploy(self) -> bool:
        """Applied only when asked, or on a new database (see the module docstring)."""
        return self.name.endswith("_after_deploy.sql")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def list_migrations() -> list[Migration]:
    """The migration files shipped with the package, in run order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            if not _NAME.match(entry.name):
                raise MigrationError(f"migration file name {entry.name!r} is not NNNN_name.sql")
            found.append(Migration(entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.name)


@translate_errors
async def apply_migrations(dsn: str, *, after_deploy: bool = False) -> list[str]:
    """Bring the database up to date; returns the names applied by this call.

    After-deploy files are applied with `after_deploy`, or when the database has none recorded yet."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            return await _apply_missing(conn, list_migrations(), after_deploy=after_deploy)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await conn.close()


async def _apply_missing(conn: asyncpg.Connection, migrations: list[Migration], *, after_deploy: bool) -> list[str]:
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            name       text PRIMARY KEY,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    recorded = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
    # Migrations recorded but unknown here come from a newer release during a rolling deploy:
    # this process leaves them alone (before-deploy files keep old code working).
    # Nothing recorded: no gateway has used this database, so no older one needs what an
    # after-deploy file removes.
    after_deploy = after_deploy or not recorded
    applied = []
    for migration in migrations:
        if migration.name in recorded:
            if recorded[migration.name] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.name} changed after it was applied; add a new migration instead"
                )
            continue
        if migration.after_deploy and not after_deploy:
            log.warning(
                "migration %s is pending: run `mailslot migrate --after-deploy` once every gateway runs this release",
                migration.name,
            )
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                migration.name,
                migration.checksum,
            )
        applied.append(migration.name)
    return applied
