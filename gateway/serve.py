"""`mailslot serve`: bring the database up, create the demo workspace once, run the app."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os

import uvloop
from aiohttp import web

import storage

from .app import create_app
from .config import Config

__all__ = ["serve"]

log = logging.getLogger("mailslot")

DEMO_WORKSPACE = "demo"


def serve(config: Config) -> int:
    """Serve until SIGINT/SIGTERM; an embedded server started here is stopped on the way out."""
    embedded: storage.EmbeddedPostgres | None = None
    url = config.database_url
    if not url:
        embedded = storage.EmbeddedPostgres(config.data_dir)
        if embedded.is_running():
            embedded = None  # someone else's: leave it running
            url = storage.EmbeddedPostgres(config.data_dir).start()
        else:
            url = embedded.start()
            log.info("embedded PostgreSQL started under %s", config.data_dir.resolve() / "postgres")
    try:
        asyncio.run(_prepare(config, url))
        config = dataclasses.replace(config, database_url=url)
        web.run_app(
            create_app(config),
            host=config.host,
            port=config.port,
            loop=uvloop.new_event_loop(),
            handler_cancellation=True,
            access_log=None,
            print=lambda _: log.info("serving on http://%s:%d", config.host, config.port),
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


async def _prepare(config: Config, url: str) -> None:
    applied = await storage.apply_migrations(url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    if config.demo_workspace:
        await _ensure_demo_workspace(config, url)


async def _ensure_demo_workspace(config: Config, url: str) -> None:
    """On first start, create the demo workspace and show its credentials (also kept in the data folder)."""
    pool = await storage.create_pool(url, min_size=1, max_size=2)
    try:
        if await storage.get_workspace_by_name(pool, DEMO_WORKSPACE) is not None:
            return
        credentials = await storage.create_workspace(pool, DEMO_WORKSPACE)
    finally:
        await pool.close()
    from .cli import credentials_dict

    values = credentials_dict(credentials)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    path = config.data_dir / "demo-workspace.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(values, file, indent=2)
    print(
        "\nDemo workspace created (credentials also saved in " + str(path) + "):\n"
        f"  site id:         {values['site_id']}\n"
        f"  API key:         {values['api_key']}\n"
        f"  identity secret: {values['identity_secret']}\n",
        flush=True,
    )
