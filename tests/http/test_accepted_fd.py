"""An accepted connection reaches uvloop as its bare descriptor, not a `socket.socket`
(gateway/http/sites.py `AcceptedFd`): the descriptor is closed exactly once, by whoever owns it.

A descriptor closed twice could close another connection that the kernel gave the same number;
one never closed leaks a file per connection. Both are checked by descriptor numbers and the
process's open files, never by time.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from gateway.http.sites import AcceptedFd
from tests.helpers import wait_until
from tests.http.workers import Client, Worker

CONNECTIONS = 60


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def open_files() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def settled_open_files(worker: Worker, port: int) -> int:
    """The open files once a first connection was served and closed: the loop opens a file or two
    of its own the first time (a wake-up descriptor), which is not a connection's."""
    client = await Client.connect(port)
    assert await client.who() == "only"
    await client.close()
    await wait_until(lambda: len(worker.guard) == 0, what="the first connection closed")
    return open_files()


def test_a_descriptor_the_loop_took_is_not_closed_again() -> None:
    a, b = socket.socketpair()
    fd = a.detach()
    try:
        accepted = AcceptedFd(fd, socket.AF_UNIX)
        assert accepted.fileno() == fd  # the loop takes it
        accepted.close()  # the loop closed it already; the number may be another file's by now
        assert is_open(fd)
    finally:
        os.close(fd)
        b.close()


def test_a_descriptor_the_loop_never_took_is_closed() -> None:
    a, b = socket.socketpair()
    fd = a.detach()
    try:
        AcceptedFd(fd, socket.AF_UNIX).close()
        assert not is_open(fd)
    finally:
        b.close()


async def test_connections_served_and_closed_leave_no_descriptor_behind(listening: socket.socket) -> None:
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")  # the path under test
    port = listening.getsockname()[1]
    worker = Worker("only", listening, max_connections=0)
    await worker.start()
    try:
        before = await settled_open_files(worker, port)
        clients = [await Client.connect(port) for _ in range(CONNECTIONS)]
        await wait_until(lambda: len(worker.guard) == CONNECTIONS, what="every connection accepted")
        assert [await c.who() for c in clients] == ["only"] * CONNECTIONS
        # Both ends of each connection are this process's files while they are open.
        assert open_files() >= before + 2 * CONNECTIONS
        for client in clients:
            await client.close()
        await wait_until(lambda: len(worker.guard) == 0, what="the server closed its ends")
        await wait_until(lambda: open_files() == before, what="every descriptor closed")
    finally:
        await worker.stop()


async def test_connections_the_guard_refuses_leave_no_descriptor_behind(listening: socket.socket) -> None:
    """Past the per-address cap the guard's protocol closes a connection the moment it is made."""
    port = listening.getsockname()[1]
    worker = Worker("only", listening, max_connections=0, max_per_ip=5)
    await worker.start()
    try:
        before = await settled_open_files(worker, port)
        clients = [await Client.connect(port) for _ in range(20)]
        await wait_until(lambda: len(worker.guard) == 5, what="five connections kept")
        refused = 0
        for client in clients:
            try:
                await client.who()
            except (ConnectionError, asyncio.IncompleteReadError):
                refused += 1
        assert refused == 15
        for client in clients:
            client.writer.close()
        await wait_until(lambda: len(worker.guard) == 0, what="the kept ones closed")
        await wait_until(lambda: open_files() == before, what="every descriptor closed")
    finally:
        await worker.stop()
