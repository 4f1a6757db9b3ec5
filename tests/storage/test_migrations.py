"""Migrations: an empty database twice, from several processes at once, and a changed file refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

import storage
from storage.migrate import list_migrations
from tests.conftest import database_url_for

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p.name for p in (ROOT / "storage" / "migrations").glob("*.sql"))
AFTER_DEPLOY = [name for name in FILES if name.endswith("_after_deploy.sql")]
PROCESSES = 4


@pytest.fixture
async def scratch_url(server_url: str) -> AsyncIterator[str]:
    """An empty database (no template), dropped afterwards."""
    name = "migrate_" + uuid.uuid4().hex[:16]
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
        yield database_url_for(server_url, name)
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


async def recorded(url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT name, checksum FROM schema_migrations ORDER BY name")
    finally:
        await conn.close()
    return [(r["name"], r["checksum"]) for r in rows]


def sha256_of(name: str) -> str:
    return hashlib.sha256((ROOT / "storage" / "migrations" / name).read_text(encoding="utf-8").encode()).hexdigest()


def test_the_shipped_files_are_listed_in_run_order() -> None:
    assert FILES, "no migrations shipped"
    assert [m.name for m in list_migrations()] == FILES
    assert [m.checksum for m in list_migrations()] == [sha256_of(name) for name in FILES]


async def test_an_empty_database_twice(scratch_url: str) -> None:
    assert await storage.apply_migrations(scratch_url) == FILES
    assert await recorded(scratch_url) == [(name, sha256_of(name)) for name in FILES]

    assert await storage.apply_migrations(scratch_url) == []
    assert await recorded(scratch_url) == [(name, sha256_of(name)) for name in FILES]


async def test_a_migrated_database_serves(scratch_url: str) -> None:
    """The migrations are the schema: a fresh database can take a workspace and a send."""
    await storage.apply_migrations(scratch_url)
    pool = await storage.create_pool(scratch_url, min_size=1, max_size=2)
    try:
        credentials = await storage.create_workspace(pool, "fresh")
        assert await storage.get_workspace_by_api_key(pool, credentials.api_key) == credentials.workspace
    finally:
        await pool.close()


# Each process imports everything, says "ready", and migrates only when told "go": the parent
# releases them together so that their migrations really overlap.
PROGRAM = """
import asyncio, json, sys
import storage
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps(asyncio.run(storage.apply_migrations(sys.argv[1]))), flush=True)
"""


async def test_from_several_processes_at_once(scratch_url: str) -> None:
    """The advisory lock serialises them: each file is applied by exactly one process, and recorded once."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", PROGRAM, scratch_url, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 60)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()

    applied: list[str] = []
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        applied += json.loads(out)
    assert sorted(applied) == FILES  # every file once, by whichever process got the lock first
    assert await recorded(scratch_url) == [(name, sha256_of(name)) for name in FILES]


async def test_a_changed_file_is_refused(scratch_url: str) -> None:
    await storage.apply_migrations(scratch_url)
    first = FILES[0]
    conn = await asyncpg.connect(scratch_url)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = $1 WHERE name = $2", "0" * 64, first)
        with pytest.raises(storage.MigrationError, match=first):
            await storage.apply_migrations(scratch_url)

        # The refusal released the advisory lock: put the checksum back and the next run goes through.
        await conn.execute("UPDATE schema_migrations SET checksum = $1 WHERE name = $2", sha256_of(first), first)
        assert await asyncio.wait_for(storage.apply_migrations(scratch_url), 10) == []
    finally:
        await conn.close()


async def test_a_migration_from_a_newer_release_is_left_alone(scratch_url: str) -> None:
    """During a rolling deploy the database may know files this release does not ship."""
    await storage.apply_migrations(scratch_url)
    conn = await asyncpg.connect(scratch_url)
    try:
        await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ('9999_future.sql', 'x')")
    finally:
        await conn.close()
    assert await storage.apply_migrations(scratch_url) == []
    assert [name for name, _ in await recorded(scratch_url)] == [*FILES, "9999_future.sql"]


async def test_a_partly_migrated_database_gets_the_rest(scratch_url: str) -> None:
    """A database at an older release is brought up to date with the missing files only."""
    if len(FILES) < 2:
        pytest.skip("needs at least two migrations")
    conn = await asyncpg.connect(scratch_url)
    try:
        await conn.execute((ROOT / "storage" / "migrations" / FILES[0]).read_text(encoding="utf-8"))
        await conn.execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                           FILES[0], sha256_of(FILES[0]))
    finally:
        await conn.close()
    # A database in use: after-deploy files wait for `mailslot migrate --after-deploy`.
    assert await storage.apply_migrations(scratch_url) == [n for n in FILES[1:] if n not in AFTER_DEPLOY]
    assert await storage.apply_migrations(scratch_url, after_deploy=True) == AFTER_DEPLOY
    assert await recorded(scratch_url) == [(name, sha256_of(name)) for name in FILES]


async def test_the_test_template_is_fully_migrated(template_url: str) -> None:
    assert await recorded(template_url) == [(name, sha256_of(name)) for name in FILES]


async def _migrate_up_to(url: str, last: str) -> None:
    """Apply and record the shipped files up to and including `last`, as an older release did."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in list_migrations():
            if migration.name > last:
                break
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                                   migration.name, migration.checksum)
    finally:
        await conn.close()


async def _valid_indexes(url: str) -> dict[str, bool]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid IN ('messages'::regclass, 'people'::regclass)"
        )
    finally:
        await conn.close()
    return {r["relname"]: r["indisvalid"] for r in rows}


async def test_indexes_built_concurrently_beforehand_are_taken_as_they_are(scratch_url: str) -> None:
    """docs/operations.md: on a large database the operator builds 0024's and 0025's indexes first."""
    await _migrate_up_to(scratch_url, "0023_broadcast_fan_out.sql")
    conn = await asyncpg.connect(scratch_url)
    try:
        for statement in (
            "CREATE UNIQUE INDEX CONCURRENTLY messages_idempotency_key_given ON messages"
            " (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL",
            "CREATE INDEX CONCURRENTLY messages_pending_by_workspace_expiry ON messages (workspace_id, expires_at)"
            " WHERE state IN ('queued', 'offered')",
            "CREATE INDEX CONCURRENTLY people_recent_by_workspace ON people (workspace_id, last_message_at)"
            " WHERE last_message_at IS NOT NULL",
        ):
            await conn.execute(statement)
    finally:
        await conn.close()
    assert await storage.apply_migrations(scratch_url) == [
        n for n in FILES if n > "0023_broadcast_fan_out.sql" and n not in AFTER_DEPLOY
    ]
    indexes = await _valid_indexes(scratch_url)
    assert indexes["messages_idempotency_key_given"] and indexes["messages_pending_by_workspace_expiry"]
    assert indexes["people_recent_by_workspace"]
    assert "messages_pending_by_expiry" not in indexes
    assert indexes["messages_idempotency_key"]  # until the after-deploy file
    assert await storage.apply_migrations(scratch_url, after_deploy=True) == AFTER_DEPLOY
    assert "messages_idempotency_key" not in await _valid_indexes(scratch_url)


async def test_an_index_left_invalid_by_a_failed_concurrent_build_stops_the_migration(scratch_url: str) -> None:
    await _migrate_up_to(scratch_url, "0023_broadcast_fan_out.sql")
    conn = await asyncpg.connect(scratch_url)
    try:
        workspace = await conn.fetchval(
            "INSERT INTO workspaces (name, site_id, identity_secret) VALUES ('w', 's', 'x') RETURNING id"
        )
        person = await conn.fetchval(
            "INSERT INTO people (workspace_id, external_id) VALUES ($1, 'p') RETURNING id", workspace
        )
        await conn.execute(
            "INSERT INTO messages (workspace_id, person_id, content, expires_at) VALUES ($1, $2, '{}', now())",
            workspace, person,
        )
        # Division by zero on the one row: the build fails and leaves the index behind, invalid.
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.execute(
                "CREATE INDEX CONCURRENTLY messages_pending_by_workspace_expiry"
                " ON messages ((1 / (priority - priority)))"
            )
    finally:
        await conn.close()
    assert (await _valid_indexes(scratch_url))["messages_pending_by_workspace_expiry"] is False
    with pytest.raises(asyncpg.RaiseError, match="messages_pending_by_workspace_expiry is invalid"):
        await storage.apply_migrations(scratch_url)
    assert [name for name, _ in await recorded(scratch_url)][-1] == "0023_broadcast_fan_out.sql"


# What a gateway from before 0024 sends with: ON CONFLICT without the partial index's predicate.
OLD_RELEASE_SEND = (
    "INSERT INTO messages (workspace_id, person_id, content, expires_at, idempotency_key)"
    " VALUES ($1, $2, '{}', now() + interval '1 day', $3)"
    " ON CONFLICT (workspace_id, idempotency_key) DO NOTHING RETURNING id"
)


async def test_a_rolling_deploy_keeps_both_releases_sending(scratch_url: str) -> None:
    """0024 lands while gateways from before it still run; only `--after-deploy` drops what they need."""
    await _migrate_up_to(scratch_url, "0023_broadcast_fan_out.sql")
    assert "0026_drop_full_idempotency_key_after_deploy.sql" in AFTER_DEPLOY
    await storage.apply_migrations(scratch_url)  # the first gateway of the new release starts
    pool = await storage.create_pool(scratch_url, min_size=1, max_size=2)
    try:
        workspace = (await storage.create_workspace(pool, "w")).workspace.id
        person = await pool.fetchval(
            "INSERT INTO people (workspace_id, external_id) VALUES ($1, 'old') RETURNING id", workspace
        )
        # The older gateway: a key sent twice is one message.
        assert await pool.fetchval(OLD_RELEASE_SEND, workspace, person, "old-key") is not None
        assert await pool.fetchval(OLD_RELEASE_SEND, workspace, person, "old-key") is None
        # The new one, on the same database: the same.
        key = storage.Idempotency("k", b"digest")
        new = storage.NewMessage(content={"title": "Hello"}, ttl_s=3600)
        first = await storage.send_message(pool, workspace, new, external_id="ada", idempotency=key)
        again = await storage.send_message(pool, workspace, new, external_id="ada", idempotency=key)
        assert first.message is not None and again.message is not None
        assert (first.status, again.status, again.message.id) == ("queued", "replayed", first.message.id)

        # Every gateway runs the new release: the full constraint goes, and keys stay unique.
        assert await storage.apply_migrations(scratch_url, after_deploy=True) == AFTER_DEPLOY
        assert await storage.apply_migrations(scratch_url, after_deploy=True) == []
        last = await storage.send_message(pool, workspace, new, external_id="ada", idempotency=key)
        assert last.message is not None and (last.status, last.message.id) == ("replayed", first.message.id)
        with pytest.raises(asyncpg.InvalidColumnReferenceError):  # why it had to wait
            await pool.fetchval(OLD_RELEASE_SEND, workspace, person, "another")
    finally:
        await pool.close()


# What a gateway from before 0028 claims with (`claim_messages` of migration 0027's release).
OLD_RELEASE_CLAIM = (
    "SELECT c.now, c.person_id, c.last_message_at, c.pending, c.showing, c.visiting, c.id, c.content,"
    " c.properties, c.priority, c.persistent, c.expires_at, c.campaign, c.offered, c.lease_expires_at"
    " FROM mailslot_claim_messages_v1($1, $2, $3, $4::timestamptz, $5, $6, $7) AS c"
)


async def test_the_claim_function_v2_lands_beside_v1(scratch_url: str) -> None:
    """0028 adds mailslot_claim_messages_v2 on a database at 0027; gateways still calling v1 keep claiming."""
    await _migrate_up_to(scratch_url, "0027_claim_function.sql")
    old = await asyncpg.connect(scratch_url)  # an older gateway's connection, its statement prepared before
    try:
        workspace = await old.fetchval(
            "INSERT INTO workspaces (name, site_id, identity_secret) VALUES ('w', 's', 'x') RETURNING id"
        )
        person = await old.fetchval(
            "INSERT INTO people (workspace_id, external_id) VALUES ($1, 'ada') RETURNING id", workspace
        )
        insert = ("INSERT INTO messages (workspace_id, person_id, content, expires_at)"
                  " VALUES ($1, $2, '{}', now() + interval '1 day') RETURNING id")
        first = await old.fetchval(insert, workspace, person)
        rows = await old.fetch(OLD_RELEASE_CLAIM, workspace, "ada", "phone", None, 300, 10, None)
        assert [r["id"] for r in rows] == [first]

        assert await storage.apply_migrations(scratch_url) == ["0028_claim_pending_elsewhere.sql"]

        second = await old.fetchval(insert, workspace, person)
        rows = await old.fetch(OLD_RELEASE_CLAIM, workspace, "ada", "phone", None, 300, 10, None)
        assert sorted(r["id"] for r in rows) == sorted([first, second])
        # The new release, on the same database: the phone holds both, the laptop finds them elsewhere.
        pool = await storage.create_pool(scratch_url, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                phone = await storage.claim_messages(conn, workspace, "ada", "phone", lease_s=300)
                laptop = await storage.claim_messages(conn, workspace, "ada", "laptop", lease_s=300)
        finally:
            await pool.close()
        assert sorted(m.id for m in phone.messages) == sorted([first, second])
        assert (phone.pending_elsewhere, laptop.messages, laptop.pending_elsewhere) == (False, (), True)
    finally:
        await old.close()


async def _claim_functions(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT proname FROM pg_proc WHERE proname LIKE 'mailslot_claim_messages%'")
    finally:
        await conn.close()
    return {r["proname"] for r in rows}


async def test_after_the_deploy_v1_goes_and_claims_keep_working(scratch_url: str) -> None:
    """0029 drops mailslot_claim_messages_v1 only with `--after-deploy`; this release's claims, alone
    and batched, go on through v2 after it."""
    await _migrate_up_to(scratch_url, "0027_claim_function.sql")
    # The first gateway of the new release starts: v2 lands, v1 stays for the older gateways.
    assert await storage.apply_migrations(scratch_url) == ["0028_claim_pending_elsewhere.sql"]
    assert await _claim_functions(scratch_url) == {"mailslot_claim_messages_v1", "mailslot_claim_messages_v2"}
    pool = await storage.create_pool(scratch_url, min_size=1, max_size=2)
    try:
        workspace = (await storage.create_workspace(pool, "w")).workspace.id
        new = storage.NewMessage(content={"title": "Hello"}, ttl_s=3600)
        old_claim = (OLD_RELEASE_CLAIM, workspace, "ada", "phone", None, 300, 10, None)
        first = (await storage.send_message(pool, workspace, new, external_id="ada")).message
        assert first is not None
        async with pool.acquire() as conn:  # an older gateway's poll
            assert [r["id"] for r in await conn.fetch(*old_claim)] == [first.id]

        # Every gateway runs the new release: v1 goes, once.
        assert await storage.apply_migrations(scratch_url, after_deploy=True) == ["0029_drop_claim_v1_after_deploy.sql"]
        assert await storage.apply_migrations(scratch_url, after_deploy=True) == []
        assert await _claim_functions(scratch_url) == {"mailslot_claim_messages_v2"}

        second = (await storage.send_message(pool, workspace, new, external_id="ada")).message
        assert second is not None
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.UndefinedFunctionError):  # why it had to wait
                await conn.fetch(*old_claim)
            phone = await storage.claim_messages(conn, workspace, "ada", "phone", lease_s=300)
            batch = await storage.claim_message_batch(conn, [
                storage.ClaimRequest(workspace, "ada", "phone", lease_s=300),
                storage.ClaimRequest(workspace, "ada", "laptop", lease_s=300),
            ])
    finally:
        await pool.close()
    # The phone holds both (the first offered through v1 before the drop); the laptop gets neither.
    assert sorted(m.id for m in phone.messages) == sorted([first.id, second.id])
    assert sorted(m.id for m in batch[0].messages) == sorted([first.id, second.id])
    assert (batch[1].messages, batch[1].pending_elsewhere) == ((), True)
