"""The listening site of a `serve` worker: it accepts on the supervisor's socket, every queued
connection in one turn of the loop, and hands each to the connection guard (gateway/http/connections.py).

uvloop 0.23 accepts one connection per turn of its loop; under load a worker's loop turns every
50-150 ms, and a burst of new connections (clients reconnecting after a restart, a backend opening
many at once) waited in the backlog for seconds (docs/decisions/0044-accept-every-queued-connection.md).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket

import uvloop
from aiohttp import web

from .connections import ConnectionGuard, ProtocolFactory

__all__ = ["ACCEPT_BATCH", "AcceptedFd", "GuardedSockSite"]

log = logging.getLogger("mailslot.gateway")

# Most connections a worker takes from the backlog in one turn of its loop: enough to empty a
# reconnect burst's backlog in a few turns, few enough that the other workers, woken by the same
# connections, get their share, and that requests already read are not kept waiting long.
ACCEPT_BATCH = 256
# After the process ran out of file descriptors (the cap should prevent it), wait before accepting again.
ACCEPT_RETRY_S = 1.0
# accept() errors that concern one connection (already gone): skip it and take the next.
_ONE_CONNECTION_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class GuardedSockSite(web.SockSite):
    """A site on an already-listening socket (the supervisor's) whose connections `guard` watches.

    It accepts itself, every queued connection in one turn of the loop (up to `ACCEPT_BATCH`), and
    hands each to the loop with `connect_accepted_socket`, in a task of its own so that the
    hand-overs of one turn proceed together.

    It stops accepting while the guard says the process is full, which leaves the socket listening
    for the other workers, and accepts again once the process has room."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: ConnectionGuard) -> None:
        # No backlog: the socket is already listening (the supervisor's `listen()` set it), and this
        # site never calls `listen()` again.
        super().__init__(runner, sock)
        self._guard = guard
        self._listening: socket.socket | None = None
        self._factory: ProtocolFactory | None = None
        self._accepting = False
        self._stopped = False
        self._retry: asyncio.TimerHandle | None = None
        self._handing: set[asyncio.Task[None]] = set()

    @property
    def accepting(self) -> bool:
        return self._accepting

    async def start(self) -> None:
        await web.BaseSite.start(self)
        # A duplicate of our own: the supervisor's socket is shared by every worker and stays open
        # when this site stops. Non-blocking is a flag of the shared socket, which is non-blocking
        # for every worker's loop anyway.
        self._listening = self._sock.dup()
        self._listening.setblocking(False)
        server = self._runner.server
        assert server is not None
        self._factory = self._guard.wrap(server)
        self._guard.on_accepting(self._switch)
        if not self._guard.full:
            self._start_accepting()

    def _start_accepting(self) -> None:
        if self._stopped or self._accepting or self._listening is None:
            return
        asyncio.get_running_loop().add_reader(self._listening.fileno(), self._accept_queued)
        self._accepting = True

    def _stop_accepting(self) -> None:
        if self._accepting and self._listening is not None:
            asyncio.get_running_loop().remove_reader(self._listening.fileno())
        self._accepting = False

    def _switch(self, accepting: bool) -> None:
        if accepting:
            self._start_accepting()
        else:
            self._stop_accepting()  # existing connections stay open

    def _accept_queued(self) -> None:
        listening, factory = self._listening, self._factory
        assert listening is not None and factory is not None
        loop = asyncio.get_running_loop()
        guard = self._guard
        batch = ACCEPT_BATCH
        if guard.max_connections:
            # Connections being handed over count already: past the cap they would only be closed.
            # At 0 the hand-overs under way fill the process (and stop this reader) or fail and make room.
            batch = min(batch, guard.max_connections - len(guard) - len(self._handing))
        for _ in range(batch):
            try:
                conn, _address = listening.accept()
            except (BlockingIOError, InterruptedError):
                return  # the backlog is empty (or another worker took the rest)
            except OSError as exc:
                if exc.errno in _ONE_CONNECTION_ERRNOS:
                    continue
                # Out of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the kernel keeps
                # the connections queued for the other workers, and this one tries again later.
                log.warning("accepting a connection failed: %s; accepting again in %.0f s", exc, ACCEPT_RETRY_S)
                self._stop_accepting()
                self._retry = loop.call_later(ACCEPT_RETRY_S, self._retry_accepting)
                return
            task = loop.create_task(_hand_over(loop, factory, _lean(loop, conn)))
            self._handing.add(task)
            task.add_done_callback(self._handing.discard)

    def _retry_accepting(self) -> None:
        self._retry = None
        if not self._guard.full:
            self._start_accepting()

    async def stop(self) -> None:
        self._stopped = True
        self._stop_accepting()
        if self._retry is not None:
            self._retry.cancel()
        if self._listening is not None:
            self._listening.close()
        await super().stop()
        self._sock.close()


async def _hand_over(
    loop: asyncio.AbstractEventLoop, factory: ProtocolFactory, conn: socket.socket | AcceptedFd,
) -> None:
    """Give an accepted connection to the loop, with the guard's protocol (which may close it at once)."""
    try:
        await loop.connect_accepted_socket(factory, conn)  # type: ignore[arg-type]  # an AcceptedFd on uvloop
    except Exception as exc:  # the client left before the loop took the socket; nothing to answer
        log.debug("an accepted connection could not be served: %s", exc)
        conn.close()


def _lean(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> socket.socket | AcceptedFd:
    """On uvloop, the connection's descriptor without its `socket.socket` object."""
    if isinstance(loop, uvloop.Loop):
        return AcceptedFd(conn.detach(), conn.family)
    return conn  # asyncio's own loop calls a real socket's methods


class AcceptedFd:
    """An accepted connection's descriptor, in the shape uvloop's `connect_accepted_socket` reads.

    The loop keeps what it is handed until the connection closes: a `socket.socket` is 104 B of
    every held poll, this 48 (docs/decisions/0044-accept-every-queued-connection.md). uvloop 0.23
    reads `type` and `family`, takes the descriptor with one `fileno()` call, and calls `close()`
    once it has closed the descriptor itself. Until `fileno()` is called the descriptor is still
    ours, and `close()` closes it; after that it belongs to the transport, and `close()` does nothing
    (closing a number the kernel may have given to another connection would be far worse than a leak).
    """

    __slots__ = ("_fd", "family")
    type = socket.SOCK_STREAM

    def __init__(self, fd: int, family: int) -> None:
        self._fd = fd
        self.family = family

    def fileno(self) -> int:
        fd, self._fd = self._fd, -1
        return fd

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
