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
    assert await storage.apply_migrations(scratch_url) == FILES[1:]
    assert await recorded(scratch_url) == [(name, sha256_of(name)) for name in FILES]


async def test_the_test_template_is_fully_migrated(template_url: str) -> None:
    assert await recorded(template_url) == [(name, sha256_of(name)) for name in FILES]
