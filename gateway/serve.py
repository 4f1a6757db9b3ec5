"""`mailslot serve`: bring the database up, create the demo workspace once, run the workers.

With one worker the app runs in this process. With N, this process supervises N spawned
workers that share the port through SO_REUSEPORT, each with its own pool and listener; it
forwards SIGTERM/SIGINT once, restarts a worker that dies unexpectedly, and stops an embedded
PostgreSQL it started after the last worker has exited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvloop
from aiohttp import web

import storage

from .config import Config
from .core.demo import create_demo_workspace
from .credentials import credentials_dict, save_credentials
from .http.app import create_app

__all__ = ["run_worker", "serve"]

log = logging.getLogger("mailslot")

# Clients reconnect in bursts after a restart; aiohttp's default of 128 drops their SYNs.
LISTEN_BACKLOG = 4096
GC_THRESHOLD = 50_000


def serve(config: Config) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    with storage.migrated_database(config.database_url, config.data_dir) as database:
        if config.demo_workspace:
            asyncio.run(_ensure_demo_workspace(config, database.url))
        workers = config.workers or os.cpu_count() or 1
        config = dataclasses.replace(config, database_url=database.url, workers=workers)
        if workers == 1:
            run_worker(config)
            return 0
        return _supervise(config)


def run_worker(config: Config) -> None:
    """One gateway process: the app on uvloop until SIGTERM/SIGINT, then a graceful stop."""
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    # Tens of thousands of held polls are millions of live objects; with CPython's default
    # thresholds the cyclic collector re-scanned them so often that it took a third of a
    # worker's time (bench scenario 3). Nothing of a held poll is a cycle that must be freed
    # early, so collect the young generation less often and never scan what import created.
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        reuse_port=config.workers > 1,
        loop=uvloop.new_event_loop(),
        handler_cancellation=True,
        shutdown_timeout=config.shutdown_timeout_s,
        backlog=LISTEN_BACKLOG,
        access_log=None,
        print=lambda _: log.info("serving on http://%s:%d", config.host, config.port),
    )


def _worker_main(config: Config) -> None:
    # Own process group: a terminal's Ctrl-C reaches only the supervisor, which forwards it once.
    os.setpgrp()
    run_worker(config)


def _supervise(config: Config) -> int:
    metrics_dir = config.metrics_dir or (config.data_dir / "metrics")
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    # prometheus-client reads this in each worker to share values across processes.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    config = dataclasses.replace(config, metrics_dir=metrics_dir.resolve())
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> BaseProcess:
        process = context.Process(target=_worker_main, args=(config,), name="mailslot-worker")
        process.start()
        return process

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        log.info("stopping %d workers", len(processes))
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    processes = [start() for _ in range(config.workers)]
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("started %d workers on http://%s:%d", config.workers, config.host, config.port)
    failures = 0
    while processes:
        time.sleep(0.2)
        for process in list(processes):
            if process.is_alive():
                continue
            processes.remove(process)
            if stopping:
                continue
            failures += 1
            log.error("worker %s exited with %s; restarting", process.pid, process.exitcode)
            if failures > 10 * config.workers:
                log.error("workers keep failing; stopping")
                on_signal(signal.SIGTERM, None)
                return 1
            time.sleep(min(5.0, 0.2 * failures))
            processes.append(start())
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


async def _ensure_demo_workspace(config: Config, url: str) -> None:
    """On first start, create the demo workspace and show its credentials (also kept in the data folder)."""
    pool = await storage.create_pool(url, min_size=1, max_size=2)
    try:
        credentials = await create_demo_workspace(pool)
    finally:
        await pool.close()
    if credentials is None:
        return
    path = config.data_dir / "demo-workspace.json"
    save_credentials(credentials, path)
    values = credentials_dict(credentials)
    print(
        "\nDemo workspace created (credentials also saved in " + str(path) + "):\n"
        f"  site id:         {values['site_id']}\n"
        f"  API key:         {values['api_key']}\n"
        f"  identity secret: {values['identity_secret']}\n"
        f"  identity proof:  off. Anyone who knows a person's id can poll as them and take their\n"
        f"                   messages: for demos only (`mailslot workspace create` makes `required` ones).\n",
        flush=True,
    )
