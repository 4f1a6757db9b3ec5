"""Shared fixtures: one PostgreSQL per session, a migrated template, a fresh clone per test.

Set MAILSLOT_TEST_DATABASE_URL to use an existing server (its user must be able to create
databases); otherwise an embedded server starts under a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import uvloop
from yarl import URL

for _name in list(os.environ):
    if _name.startswith("MAILSLOT_") and _name != "MAILSLOT_TEST_DATABASE_URL":
        del os.environ[_name]

import storage  # noqa: E402
from gateway import Config, create_app  # noqa: E402
from gateway.core.clock import FixedClock  # noqa: E402
from tests.clones import Clones  # noqa: E402
from tests.helpers import Api  # noqa: E402

TEMPLATE = "mailslot_test_template"
# The watchdog stops the server after this long even while pytest runs: far past any session (make test: ~10 min).
WATCHDOG_MAX_S = 4 * 3600


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    return {"uvloop": uvloop.new_event_loop}


def database_url_for(server_url: str, name: str) -> str:
    return str(URL(server_url).with_path("/" + name))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL of the server's `postgres` database, for creating and dropping test databases."""
    external = os.environ.get("MAILSLOT_TEST_DATABASE_URL")
    if external:
        yield database_url_for(external, "postgres")
        return
    # Not under pytest's tmp_path: pytest prunes old numbered folders, which would pull the data
    # folder from under a server that a concurrent session still runs.
    folder = _reachable_folder("mailslot-test-pg-")
    embedded = storage.EmbeddedPostgres(folder, durable=False)
    embedded.start()
    # A test past its timeout ends the run with os._exit (pytest-timeout's thread method), past
    # every clean-up: the bench's watchdog then stops the server, as it does for a dead bench.
    watchdog = subprocess.Popen([sys.executable, "-m", "bench.watchdog", "--parent", str(os.getpid()),
                                 "--data-dir", str(folder), "--max-seconds", str(WATCHDOG_MAX_S)])
    try:
        # The superuser, not the app's role: the tests create a database per test (CREATEDB).
        yield embedded.admin_dsn("postgres")
    finally:
        watchdog.terminate()
        watchdog.wait()
        embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _reachable_folder(prefix: str) -> Path:
    """A new folder that an embedded PostgreSQL's server user can enter, even when the tests run as root.

    mkdtemp makes it 0700. Under root the server runs as `mailslot-pg`, and for a data folder that
    user cannot enter mailslot keeps the cluster in /var/lib/mailslot/clusters
    (docs/decisions/0041), where a run that dies before its clean-up would leave it for good.
    This folder is the tests' own, so they open it themselves and the cluster stays inside it.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o711)
    return folder


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A data folder for a `mailslot serve` with its embedded PostgreSQL (pytest's tmp_path is 0700)."""
    folder = _reachable_folder("mailslot-test-data-")
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_url(server_url: str) -> str:
    """A database with every migration applied, cloned for each test."""

    async def build() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        await storage.apply_migrations(database_url_for(server_url, TEMPLATE))

    asyncio.run(build())
    return database_url_for(server_url, TEMPLATE)


@pytest.fixture(scope="session")
def clones(server_url: str, template_url: str) -> Iterator[Clones]:
    """Fresh clones of the template, made while the tests before run (tests/clones.py)."""
    made = Clones(server_url, TEMPLATE)
    yield made
    made.close()


@pytest.fixture
def database_url(server_url: str, clones: Clones) -> Iterator[str]:
    """A database of this test's own, dropped after it WITH (FORCE)."""
    name = clones.take()
    yield database_url_for(server_url, name)
    clones.drop(name)


@pytest.fixture
def clock() -> FixedClock:
    """Every test runs on a pinned instant it moves by hand."""
    return FixedClock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))


@pytest.fixture
def config(database_url: str) -> Config:
    return Config(database_url=database_url, pool_min=1, pool_max=8, demo_workspace=False, expire_interval_s=3600)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await storage.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def aiohttp_client(database_url: str, aiohttp_client):  # type: ignore[no-untyped-def]
    """pytest-aiohttp's, set up after this test's database, so its apps stop before the database is dropped.

    Apps stopped after the drop saw their connections killed mid-shutdown; whatever order a test
    asks for its fixtures in, this keeps the database there until every app has stopped.
    """
    return aiohttp_client


@pytest.fixture
async def client(config: Config, clock: FixedClock, aiohttp_client):  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(config, clock=clock, rng=random.Random(7)))


@pytest.fixture
async def api(client, pool: asyncpg.Pool) -> Api:  # type: ignore[no-untyped-def]
    """Workspace `acme` and a client speaking both APIs with its credentials.

    Identity proof `off` (new workspaces are `required`): most tests are about delivery, not
    proof; tests of proof set the mode they need with PATCH /v1/workspace.
    """
    credentials = await storage.create_workspace(pool, "acme", identity_mode="off")
    return Api(client, credentials)


@pytest.fixture
async def other_api(client, pool: asyncpg.Pool) -> Api:  # type: ignore[no-untyped-def]
    """A second workspace, `globex`, on the same gateway: for isolation tests."""
    credentials = await storage.create_workspace(pool, "globex", identity_mode="off")
    return Api(client, credentials)
