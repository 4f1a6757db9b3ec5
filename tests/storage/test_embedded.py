"""The embedded PostgreSQL's secrets, roles and permissions (docs/decisions/0017).

Each test starts its own server in a folder of its own, because what is checked happens at
initdb and at start. Under root (as in CI here) the server runs as `mailslot-pg`, which is
what the permission tests are about; they are skipped otherwise.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import storage
from storage import embedded as embedded_module
from storage.embedded import APP_ROLE, EmbeddedPostgres, EmbeddedPostgresError, scram_verifier

ROOT = os.geteuid() == 0


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder the server's user can enter (mkdtemp makes it 0700; it is this test's own)."""
    folder = Path(tempfile.mkdtemp(prefix="mailslot-embedded-"))
    folder.chmod(0o711)
    servers: list[EmbeddedPostgres] = []
    yield folder
    for data_dir in folder.rglob("postgres.password"):
        servers.append(EmbeddedPostgres(data_dir.parent))
    for server in servers:
        if server.is_running():
            server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def modes(paths: list[Path]) -> dict[Path, tuple[int, int, int]]:
    return {p: (p.stat().st_mode, p.stat().st_uid, p.stat().st_gid) for p in paths}


async def fetch(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def test_secrets_stay_private_and_never_reach_process_arguments(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = base / "data"
    calls: list[list[str]] = []
    pwfiles: list[tuple[Path, int, str]] = []
    real_run = subprocess.run

    def observed(args: Any, *rest: Any, **kwargs: Any) -> Any:
        calls.append([str(a) for a in args])
        for arg in args:
            if str(arg).startswith("--pwfile="):
                path = Path(str(arg).removeprefix("--pwfile="))
                pwfiles.append((path, stat.S_IMODE(path.stat().st_mode), path.read_text()))
        return real_run(args, *rest, **kwargs)

    monkeypatch.setattr(embedded_module.subprocess, "run", observed)
    server = EmbeddedPostgres(data_dir, durable=False)
    server.start()
    monkeypatch.undo()

    superuser_password = (data_dir / "postgres.password").read_text().strip()
    app_password = (data_dir / f"{APP_ROLE}.password").read_text().strip()
    # initdb read the superuser's password from a 0600 file in the data folder, not in /tmp ...
    assert len(pwfiles) == 1
    path, mode, text = pwfiles[0]
    assert (path.parent, mode, text) == (data_dir, 0o600, superuser_password)
    # ... removed once initdb is done.
    assert not path.exists()
    # Neither password was ever a process argument (the role's goes as a SCRAM verifier, on stdin).
    assert calls, "the server was started through subprocess.run"
    for args in calls:
        assert not any(superuser_password in a or app_password in a for a in args), args
    # Nothing in the data folder is readable, writable or enterable by others.
    for found in [data_dir, *data_dir.rglob("*")]:
        if found.is_symlink() or found == data_dir:
            continue
        assert stat.S_IMODE(found.lstat().st_mode) & 0o007 == 0, found
    for name in ("postgres.password", f"{APP_ROLE}.password"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600


def test_the_gateway_connects_as_a_role_that_owns_its_database_and_is_no_superuser(base: Path) -> None:
    server = EmbeddedPostgres(base / "data", durable=False)
    url = server.start()
    asyncio.run(storage.apply_migrations(url))

    [role] = asyncio.run(fetch(url, """
        SELECT current_user AS name, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
               pg_get_userbyid(d.datdba) AS owner
          FROM pg_roles r, pg_database d
         WHERE r.rolname = current_user AND d.datname = current_database()
    """))
    assert dict(role) == {"name": APP_ROLE, "rolsuper": False, "rolcreatedb": False, "rolcreaterole": False,
                          "rolreplication": False, "rolbypassrls": False, "owner": APP_ROLE}
    assert asyncio.run(storage.database.is_superuser(url)) is False
    assert asyncio.run(storage.database.is_superuser(server.admin_dsn(APP_ROLE))) is True
    # The app's role can do everything the gateway does, and not what only a superuser can.
    asyncio.run(_create_workspace(url))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(fetch(url, "COPY (SELECT 1) TO PROGRAM 'true'"))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(fetch(url, "CREATE DATABASE not_mine"))


async def _create_workspace(url: str) -> None:
    pool = await storage.create_pool(url, min_size=1, max_size=2)
    try:
        await storage.create_workspace(pool, "acme")
    finally:
        await pool.close()


def test_a_data_folder_from_before_the_role_is_taken_over_on_start(base: Path) -> None:
    data_dir = base / "data"
    server = EmbeddedPostgres(data_dir, durable=False)
    server.start()
    # Make it what older versions left: the superuser owns the database and everything in it,
    # and there is no `mailslot` role nor its password file.
    admin = server.admin_dsn(APP_ROLE)
    asyncio.run(storage.apply_migrations(admin))
    asyncio.run(fetch(admin, "CREATE SEQUENCE public.legacy_counter"))
    asyncio.run(fetch(server.admin_dsn(), f"ALTER DATABASE {APP_ROLE} OWNER TO postgres"))
    asyncio.run(fetch(admin, "ALTER SCHEMA public OWNER TO postgres"))
    asyncio.run(fetch(admin, f"DROP OWNED BY {APP_ROLE}"))
    asyncio.run(fetch(server.admin_dsn(), f"DROP ROLE {APP_ROLE}"))
    (data_dir / f"{APP_ROLE}.password").unlink()
    owned = asyncio.run(fetch(admin, "SELECT count(*) AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                                     "AND relowner = 'postgres'::regrole"))
    assert owned[0]["n"] > 10, "the premise: the superuser owns the old tables"
    server.stop()

    url = EmbeddedPostgres(data_dir, durable=False).start()
    assert asyncio.run(storage.apply_migrations(url)) == []  # nothing lost, nothing re-applied
    not_ours = asyncio.run(fetch(url, f"""
        SELECT c.relname AS name FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relowner <> '{APP_ROLE}'::regrole
        UNION ALL
        SELECT p.proname FROM pg_proc p
         WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> '{APP_ROLE}'::regrole
        UNION ALL
        SELECT 'schema public' FROM pg_namespace WHERE nspname = 'public' AND nspowner <> '{APP_ROLE}'::regrole
    """))
    assert not_ours == []
    assert asyncio.run(storage.database.is_superuser(url)) is False
    asyncio.run(_create_workspace(url))
    asyncio.run(fetch(url, "SELECT nextval('legacy_counter')"))


def test_scram_verifier_has_postgresql_s_shape() -> None:
    verifier = scram_verifier("secret")
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256"
    iterations_salt, keys = rest.split("$")
    assert iterations_salt.split(":")[0] == "4096"
    assert len(keys.split(":")) == 2
    assert "secret" not in verifier and scram_verifier("secret") != verifier  # salted


@pytest.mark.skipif(not ROOT, reason="only root runs the server as another user")
def test_under_root_no_permission_outside_the_data_folder_changes(base: Path) -> None:
    parent = base / "operator" / "srv"
    parent.mkdir(parents=True)
    (base / "operator").chmod(0o751)
    parent.chmod(0o705)
    watched = [*reversed(parent.parents), parent]
    install = embedded_module._install_dir()
    watched += [*install.parents, install, *install.rglob("*")]
    before = modes(watched)
    server = EmbeddedPostgres(parent / "data", durable=False)
    server.start()
    server.stop()
    assert modes(watched) == before


@pytest.mark.skipif(not ROOT, reason="only root runs the server as another user")
def test_under_root_a_folder_the_server_user_cannot_enter_is_a_clear_error(base: Path) -> None:
    locked = base / "locked"
    locked.mkdir(mode=0o700)
    locked.chmod(0o700)
    server = EmbeddedPostgres(locked / "data", durable=False)
    with pytest.raises(EmbeddedPostgresError) as caught:
        server.start()
    message = str(caught.value)
    assert str(locked) in message and "mailslot-pg" in message
    assert "MAILSLOT_DATA_DIR" in message and "MAILSLOT_DATABASE_URL" in message
    assert stat.S_IMODE(locked.stat().st_mode) == 0o700, "the operator's folder is left as it was"
    assert not server.is_running()


async def test_checkpoints_are_far_enough_apart_for_a_large_broadcast(server_url: str) -> None:
    """A million-person broadcast writes ~650 MB of WAL; the default 1 GB checkpointed every ~25 s."""
    if os.environ.get("MAILSLOT_TEST_DATABASE_URL"):
        pytest.skip("a server mailslot did not start keeps its own settings")
    rows = await fetch(server_url, """
        SELECT name, setting, unit FROM pg_settings WHERE name IN ('max_wal_size', 'checkpoint_timeout')
    """)
    assert {r["name"]: (r["setting"], r["unit"]) for r in rows} == {
        "max_wal_size": ("4096", "MB"),
        "checkpoint_timeout": ("900", "s"),
    }
