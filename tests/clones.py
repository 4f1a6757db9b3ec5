"""Test databases cloned from the migrated template one step ahead of the tests that take them.

`CREATE DATABASE … TEMPLATE` copies the whole template (8 MB, nearly all of it PostgreSQL's own
catalogs) and takes 70-150 ms, writeback permitting: the largest part of a short test's setup,
paid about 1,700 times a run. A thread clones the next databases while the current test runs and
drops each used one after its test, so a test waits for a clone only when it outruns the thread.
Each test still gets a database no other test has touched.

The thread speaks to the server's `postgres` database on its own connection and event loop; a
failure to clone reaches the test that would have taken the database.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid

import asyncpg

__all__ = ["Clones"]

# Clones kept ready: one covers a test that takes about as long as a clone; a second absorbs the
# occasional slow clone (a checkpoint) behind a run of short tests.
AHEAD = 2
# How long a test waits for its clone before the setup fails (a stuck server, not a slow one).
TAKE_TIMEOUT_S = 60.0

_STOP = object()


class Clones:
    """Per session: database names cloned from `template`, handed out once each."""

    def __init__(self, server_url: str, template: str) -> None:
        self._server_url = server_url
        self._template = template
        self._jobs: queue.SimpleQueue[object] = queue.SimpleQueue()  # a name to drop, None to clone, or _STOP
        self._ready: queue.SimpleQueue[str | BaseException] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="test-database-clones", daemon=True)
        for _ in range(AHEAD):
            self._jobs.put(None)
        self._thread.start()

    def take(self) -> str:
        """A fresh database's name; the thread starts cloning the next one at once."""
        self._jobs.put(None)
        try:
            ready = self._ready.get(timeout=TAKE_TIMEOUT_S)
        except queue.Empty:
            raise TimeoutError(f"no test database cloned from {self._template} in {TAKE_TIMEOUT_S:.0f} s") from None
        if isinstance(ready, BaseException):
            raise ready
        return ready

    def drop(self, name: str) -> None:
        """Drop a database once its test is over (its app shut down), behind the test that follows."""
        self._jobs.put(name)

    def close(self) -> None:
        """Drop what is still cloned or waiting to be dropped, and stop the thread."""
        self._jobs.put(_STOP)
        self._thread.join(timeout=TAKE_TIMEOUT_S)

    def _work(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        conn = await asyncpg.connect(self._server_url)
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    break
                try:
                    if isinstance(job, str):
                        await conn.execute(f"DROP DATABASE IF EXISTS {job} WITH (FORCE)")
                    else:
                        name = "test_" + uuid.uuid4().hex[:16]
                        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {self._template}")
                        self._ready.put(name)
                except Exception as exc:  # the next test to take a database fails with it
                    self._ready.put(exc)
            while True:  # clones no test took
                try:
                    left = self._ready.get_nowait()
                except queue.Empty:
                    break
                if isinstance(left, str):
                    await conn.execute(f"DROP DATABASE IF EXISTS {left} WITH (FORCE)")
        finally:
            await conn.close()
