"""Schemathesis against the real app: generated requests from /openapi.json never get a 500, and
every answer conforms to the document (status, content type, body schema).

The app runs in a thread of its own on 127.0.0.1 against a fresh clone of the test database,
because schemathesis calls it synchronously. Examples per operation are bounded so that the
suite stays within its time; the seed is fixed so that a failure reproduces.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

import storage
from gateway import Config, create_app
from gateway.http.openapi import build_document
from gateway.http.routes import API_ROUTES
from tests.conftest import TEMPLATE, database_url_for

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass(frozen=True)
class LiveApp:
    url: str
    api_key: str
    site_id: str


@pytest.fixture(scope="module")
def live_app(server_url: str, template_url: str) -> Iterator[LiveApp]:
    name = "fuzz_" + uuid.uuid4().hex[:12]
    database_url = database_url_for(server_url, name)

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    started = threading.Event()
    stopping: asyncio.Event | None = None
    state: dict[str, Any] = {}

    async def run() -> None:
        nonlocal stopping
        stopping = asyncio.Event()
        # A fuzzed `wait` would hold each poll example for the whole maximum (60 s by default, past
        # the client's timeout); held polls have their own tests, so here a poll holds at most 1 s.
        config = Config(database_url=database_url, pool_min=1, pool_max=4, demo_workspace=False, rate_limits=False,
                        max_wait_s=1)
        runner = web.AppRunner(create_app(config))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        pool = await storage.create_pool(database_url, min_size=1, max_size=2)
        credentials = await storage.create_workspace(pool, "fuzz")
        await storage.update_workspace(pool, credentials.workspace.id, identity_mode="off")
        await pool.close()
        port = runner.addresses[0][1]
        state["app"] = LiveApp(f"http://127.0.0.1:{port}", credentials.api_key, credentials.workspace.site_id)
        started.set()
        await stopping.wait()
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(60), "the app did not start"
    yield state["app"]
    assert stopping is not None
    loop.call_soon_threadsafe(stopping.set)
    thread.join(30)
    loop.close()  # else its self-pipe sockets are left for the garbage collector to warn about
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# The document the app serves is built from the route table alone, so it can be loaded at import.
schema = schemathesis.openapi.from_dict(build_document(API_ROUTES))


def test_the_served_document_is_the_one_fuzzed(live_app: LiveApp) -> None:
    served = requests.get(live_app.url + "/openapi.json", timeout=10).json()
    assert served == build_document(API_ROUTES)


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck), database=None)
def test_generated_requests_never_fail_the_contract(case: Any, live_app: LiveApp) -> None:
    # Device requests name the live workspace, so that they get past the site check and reach
    # the handlers; server requests carry its API key.
    if isinstance(case.body, dict) and "site_id" in case.body:
        case.body["site_id"] = live_app.site_id
    headers = {"Authorization": f"Bearer {live_app.api_key}"}
    response = case.call(base_url=live_app.url, headers=headers, timeout=35)
    case.validate_response(response, checks=CHECKS)
