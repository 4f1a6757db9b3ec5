"""A worker takes every connection waiting in the backlog in one turn of its loop, not one per turn
(gateway/http/sites.py, docs/decisions/0044-accept-every-queued-connection.md).

uvloop 0.23 accepts one connection per turn: a loaded worker whose loop turned every 100 ms took
about ten new connections a second, and a reconnect burst's requests waited in the backlog for
seconds. The tests count the loop's turns, never time.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.helpers import wait_until
from tests.http.workers import Client, Worker

QUEUED = 100  # within the listening fixture's backlog (128), or connect() waits for an accept
# The accept, the hand-over to the loop, connection_made: a few turns, whatever the burst's size.
MOST_TURNS = 6


async def turns_until(condition: Callable[[], bool], *, most: int = 10_000) -> int:
    """The loop's turns until `condition` holds: a callback that schedules itself runs once per turn."""
    loop = asyncio.get_running_loop()
    counted: asyncio.Future[int] = loop.create_future()
    turns = 0

    def tick() -> None:
        nonlocal turns
        turns += 1
        if condition() or turns >= most:
            counted.set_result(turns)
        else:
            loop.call_soon(tick)

    loop.call_soon(tick)
    return await counted


def queue_connections(port: int, count: int) -> list[socket.socket]:
    """Connect while the loop cannot turn: the kernel completes each handshake into the backlog."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


async def test_a_burst_of_queued_connections_is_accepted_in_a_few_turns(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    worker = Worker("only", listening, max_connections=0)
    await worker.start()
    queued = queue_connections(port, QUEUED)
    try:
        turns = await turns_until(lambda: len(worker.guard) == QUEUED)
        assert len(worker.guard) == QUEUED
        assert turns <= MOST_TURNS, f"{QUEUED} queued connections took {turns} turns of the loop"
        # Every one of them is served.
        clients = [Client(*await asyncio.open_connection(sock=sock)) for sock in queued[:5]]
        assert [await c.who() for c in clients] == ["only"] * 5
        for client in clients:
            await client.close()
    finally:
        for sock in queued:
            sock.close()
        await worker.stop()


async def test_a_burst_past_the_cap_fills_the_worker_and_leaves_the_rest_queued(
    listening: socket.socket,
) -> None:
    port = listening.getsockname()[1]
    full = Worker("full", listening, max_connections=10)
    await full.start()
    queued = queue_connections(port, 30)
    other = Worker("other", listening, max_connections=0)
    try:
        await wait_until(lambda: full.guard.full, what="the worker is full")
        assert len(full.guard) == 10
        assert full.site is not None and not full.site.accepting
        # None was accepted only to be closed: the other 20 still wait, for a worker with room.
        await other.start()
        await wait_until(lambda: len(other.guard) == 20, what="the other worker takes the other 20")
        assert len(full.guard) == 10
    finally:
        for sock in queued:
            sock.close()
        await full.stop()
        await other.stop()


# A server in a process of its own, whose open-files limit runs out before its backlog does.
OUT_OF_FILES_SERVER = """
import asyncio, logging, resource, socket, sys
import uvloop
from aiohttp import web
from gateway.http.connections import ConnectionGuard
from gateway.http.sites import GuardedSockSite

async def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    app = web.Application()
    app.router.add_get("/who", lambda request: web.Response(text="only"))
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    guard = ConnectionGuard(header_timeout_s=60, max_per_ip=0, max_connections=0)  # no cap: files run out
    await GuardedSockSite(runner, sock, guard).start()
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""
FILES_LIMIT = 100
CLIENTS = 200
# Long enough for the server to answer every connection it could take; the others wait for files.
SETTLE_S = 3


async def test_a_worker_out_of_files_keeps_the_rest_queued_and_accepts_them_once_files_free(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-c", OUT_OF_FILES_SERVER, str(FILES_LIMIT), stdout=subprocess.PIPE, stderr=stderr)
    clients: list[Client] = []
    reads: dict[asyncio.Future[bytes], Client] = {}
    try:
        assert server.stdout is not None
        port = int(await asyncio.wait_for(server.stdout.readline(), 30))
        clients = [Client(*await asyncio.open_connection("127.0.0.1", port)) for _ in range(CLIENTS)]
        for client in clients:
            client.writer.write(b"GET /who HTTP/1.1\r\nHost: test\r\n\r\n")
        # The server runs out of files part way: it says so, and the rest of the connections wait.
        await wait_until(lambda: "accepting a connection failed" in log.read_text(), what="the out-of-files warning")
        reads = {asyncio.ensure_future(c.reader.readuntil(b"\r\n\r\n")): c for c in clients}
        answered, waiting = await asyncio.wait(reads, timeout=SETTLE_S)
        assert 0 < len(answered) < CLIENTS
        # Each client that has its answer leaves, which frees a file: every waiting one is taken in turn.
        while answered:
            for read in answered:
                assert read.result().startswith(b"HTTP/1.1 200"), read.result()
                await reads[read].close()
            if not waiting:
                break
            answered, waiting = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert not waiting, f"{len(waiting)} waiting connections were never answered"
        # A warning per retry while out of files, never a loop that spins on the error.
        assert log.read_text().count("\n") < 30, log.read_text()[-2000:]
        assert server.returncode is None
    finally:
        for read in reads:
            read.cancel()
        for client in clients:
            client.writer.close()
        server.kill()
        await server.wait()
