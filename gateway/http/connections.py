"""Slow and greedy clients: a header deadline, a body deadline, a cap per client address, and a
cap per process that keeps file descriptors for the process's own database connections.

aiohttp 3.14 has an idle keep-alive timeout but no deadline for a request's headers or body,
so a client that trickles headers, or declares a body and never sends it, holds a socket (and
a file descriptor) for as long as it likes. `ConnectionGuard` wraps each connection's protocol:
it counts connections per address (over the cap, the connection is closed at once) and closes
one whose request headers are not complete within `header_timeout_s`. The headers are complete
when the request reaches the gateway's middleware (gateway/http/middlewares.py), which then
reads the body within `body_timeout_s` (every handler reads it anyway; the read is cached) and
refuses a declared body over the size limit before any of it arrives.

Every worker of `serve` accepts on the same listening socket, and the kernel does not spread
connections evenly over them: with 100,000 held polls over 10 workers, one worker held 19,964
(bench s7) against an open-files limit of 20,000, and then could not open a database connection
(`OSError: Too many open files`, answered 503) nor take a connection (reset). So a process keeps
`max_connections` below its open-files limit (`connection_limit`): at the cap it stops accepting,
and the other workers take the new connections; it accepts again once a few have closed
(docs/decisions/0036-connections-per-worker.md). The site that accepts for it is
gateway/http/sites.py.

Held polls are never cut: the header deadline only runs while no request is being handled, and
the idle keep-alive timeout (aiohttp's) only while the connection waits for its next request.
Being the one place that sees each connection open and each request start, the guard also keeps
aiohttp from holding what a held poll no longer needs: the keep-alive timer, a read-out body's
buffer, per-connection copies of the socket names (docs/decisions/0029-held-poll-memory.md).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from ..core.metrics import Metrics
from ..errors import PayloadTooLarge
from .keys import CONFIG
from .messages import BATCH_PATH

__all__ = [
    "CONNECTIONS", "RESERVED_FILES", "ConnectionGuard", "ProtocolFactory", "connection_limit", "hold_connection",
    "read_body_in_time",
]

log = logging.getLogger("mailslot.gateway")

ProtocolFactory = Callable[[], asyncio.BaseProtocol]

# File descriptors a process keeps for itself beside its pool's connections and its clients': the
# listener's connection, prometheus's files, logs, pipes, the event loop's own, a connection being
# opened. A worker at rest uses about 30.
RESERVED_FILES = 64


def connection_limit(open_files: int, pool_max: int) -> int:
    """Most client connections one process takes: its open-files limit less its database pool and `RESERVED_FILES`."""
    return max(1, open_files - pool_max - RESERVED_FILES)


class ConnectionGuard:
    """One per process: wraps the server's protocol factory, keeps the per-address counts and the
    process's connection count, and tells the sites when to stop and start accepting."""

    def __init__(
        self, *, header_timeout_s: float, max_per_ip: int, metrics: Metrics | None = None, max_connections: int = 0,
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_per_ip = max_per_ip
        self.metrics = metrics
        # 0: no cap. At the cap the sites stop accepting; below `resume_at` they accept again.
        self.max_connections = max_connections
        self.resume_at = max(0, max_connections - max(1, max_connections // 100))
        self.full = False
        self.per_ip: Counter[str] = Counter()
        self._by_transport: dict[asyncio.BaseTransport, _GuardedProtocol] = {}
        self._socknames: dict[object, object] = {}
        self._switches: list[Callable[[bool], None]] = []

    def __len__(self) -> int:
        """Connections open now (those refused at once not counted)."""
        return len(self._by_transport)

    def on_accepting(self, switch: Callable[[bool], None]) -> None:
        """Call `switch(False)` when the process is full and `switch(True)` when it has room again."""
        self._switches.append(switch)

    def _opened(self) -> None:
        if self.max_connections and not self.full and len(self._by_transport) >= self.max_connections:
            self.full = True
            log.warning("%d connections open, the most this process takes (its open-files limit less its "
                        "database connections): it stops accepting until some close", len(self._by_transport))
            for switch in self._switches:
                switch(False)

    def _left(self) -> None:
        if self.full and len(self._by_transport) <= self.resume_at:
            self.full = False
            for switch in self._switches:
                switch(True)

    def wrap(self, factory: ProtocolFactory) -> ProtocolFactory:
        """A protocol factory for `loop.create_server` whose connections this guard watches."""
        return lambda: _GuardedProtocol(self, factory)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.request_started()

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.request_finished()

    def request_held(self, transport: asyncio.BaseTransport | None) -> None:
        """The request on `transport` will wait for a while (a held poll): it keeps no timer meanwhile."""
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.request_held()

    def closed(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.closed_connections.labels(reason).inc()


class _GuardedProtocol(asyncio.Protocol):
    """Forwards every callback to aiohttp's RequestHandler; adds the deadline and the count."""

    __slots__ = ("_address", "_deadline", "_guard", "_in_request", "_inner", "_timer", "_transport")

    def __init__(self, guard: ConnectionGuard, factory: ProtocolFactory) -> None:
        self._guard = guard
        self._inner: Any = factory()
        self._transport: asyncio.Transport | None = None
        self._address: str | None = None
        # The header deadline (loop time; 0: none) and the timer that checks it. The timer is not
        # cancelled when a request starts, nor made anew for the next one: it fires, finds the
        # deadline moved or gone, and is moved on or dropped (as aiohttp's own keep-alive timer
        # does). A timer made and cancelled per request was a measurable share of a short poll.
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._in_request = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        peer = transport.get_extra_info("peername")
        # Interned: behind a proxy every connection comes from one address; one string serves them all.
        address = sys.intern(str(peer[0])) if isinstance(peer, tuple) and peer else None
        if address is not None and guard.max_per_ip and guard.per_ip[address] >= guard.max_per_ip:
            guard.closed("per_ip_limit")
            self._transport.abort()
            return
        if guard.max_connections and len(guard._by_transport) >= guard.max_connections:
            # Accepted on another listening address while this one filled the process (each site
            # counts only its own hand-overs): its file is needed more for a database connection;
            # the client's retry reaches a process with room.
            guard.closed("process_limit")
            self._transport.abort()
            return
        if address is not None:
            guard.per_ip[address] += 1
            self._address = address
        guard._by_transport[self._transport] = self
        guard._opened()
        self._arm()
        _share_names(self._inner, transport, peer, address, guard._socknames)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is None or self._guard._by_transport.pop(self._transport, None) is None:
            return  # refused over the cap: aiohttp never saw this connection
        if self._address is not None:
            per_ip = self._guard.per_ip
            per_ip[self._address] -= 1
            if per_ip[self._address] <= 0:
                del per_ip[self._address]
        self._guard._left()
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._deadline and not self._in_request:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def request_started(self) -> None:
        self._in_request += 1
        self._deadline = 0.0  # the headers are complete; the timer, if pending, will find nothing to do

    def request_finished(self) -> None:
        self._in_request -= 1

    def request_held(self) -> None:
        """A request that will wait (a held poll): drop the timers it would otherwise keep alive.

        The header timer has nothing to check until the next request. aiohttp arms its keep-alive
        timer when a connection opens and after each answer, and leaves it armed while a request
        runs: one timer (about 0.7 KiB) per held poll for nothing, since it only closes idle
        connections. `keep_alive(True)` cancels it without changing the flag (it is True while a
        request runs); aiohttp arms it again after the answer. Short requests skip both: a timer
        cancelled and made again per request costs more than the memory it frees for a moment.
        """
        self._disarm()
        self._inner.keep_alive(True)

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._guard.header_timeout_s
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._expired)

    def _disarm(self) -> None:
        self._deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        deadline = self._deadline
        if not deadline or self._in_request or self._transport is None or self._transport.is_closing():
            return  # no request is arriving now: the next one's first bytes arm a new timer
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:  # armed again for a later request since this timer was made
            self._timer = loop.call_at(deadline, self._expired)
            return
        # Headers still incomplete: possibly aiohttp has parsed them and the handler is about to
        # start, but after header_timeout_s of loop time that would be a stalled loop, not a client.
        self._guard.closed("header_timeout")
        self._transport.abort()


# Local addresses a process accepts on: one per listening address, a few per host at most.
MAX_SOCKNAMES = 16


def _share_names(handler: Any, transport: asyncio.BaseTransport, peer: object, address: str | None,
                 socknames: dict[object, object]) -> None:
    """Hand aiohttp the connection's peer and socket names, so that it keeps no copies of its own.

    aiohttp fetches both once per connection, keeps them in the handler's `_cache` (propcache's
    `under_cached_property`) and copies them into every request: about 230 B of a held poll
    (docs/decisions/0029-held-poll-memory.md). Every connection accepted on one listening address
    has the same socket name, so one tuple serves them all; the peer's name reuses the interned
    address. An aiohttp without `_cache` fetches them itself, as before.
    """
    cache = getattr(handler, "_cache", None)
    if not isinstance(cache, dict):
        return
    if isinstance(peer, tuple) and address is not None:
        cache["peername"] = (address, *peer[1:])
    sockname = transport.get_extra_info("sockname")
    shared = socknames.get(sockname)
    if shared is None and len(socknames) < MAX_SOCKNAMES:
        shared = socknames[sockname] = sockname
    cache["sockname"] = sockname if shared is None else shared


CONNECTIONS = web.AppKey("mailslot.connections", ConnectionGuard)


def hold_connection(request: web.Request) -> None:
    """The request will wait (a held poll): its connection keeps no timer meanwhile."""
    guard = request.app.get(CONNECTIONS)
    if guard is not None:
        guard.request_held(request.transport)


def _is_batch(request: web.Request) -> bool:
    """Whether the request is a batch send, whose body may be larger (`max_batch_body_bytes`)."""
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical == BATCH_PATH


async def read_body_in_time(request: web.Request, guard: ConnectionGuard | None) -> None:
    """Read the body within the body deadline; refuse a declared body over the size limit unread.

    The gateway's middleware calls it inside its error handling, so a refused body is answered as
    JSON (413, or 408 when the body is too slow; aiohttp then closes the connection, whose body
    never finished).
    """
    if not request.body_exists:
        return
    config = request.app[CONFIG]
    limit = config.max_batch_body_bytes if _is_batch(request) else config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body may be at most {limit} bytes")
    payload = getattr(request, "_payload", None)
    try:
        if payload is not None and payload.is_eof():
            # The whole body has arrived (a small one comes with the headers): reading it cannot wait, so
            # no deadline to arm and cancel, a measurable share of an empty poll's time.
            body = await request.read()
        else:
            async with asyncio.timeout(config.body_timeout_s):
                body = await request.read()
    except TimeoutError:
        if guard is not None:
            guard.closed("body_timeout")
        raise web.HTTPRequestTimeout(text="the request body did not arrive in time") from None
    # A chunked body has no length up front; aiohttp's own cap is the larger (batch) one.
    if len(body) > limit:
        raise PayloadTooLarge(f"the body may be at most {limit} bytes")
    # Not `request.content`: that caches the stream in the request's dict, which then grows.
    _release_stream(payload)


# Stands in for a read-out body stream's buffer; a tuple, so that a write after the end would fail loudly.
_DRAINED: tuple[bytes, ...] = ()


def _release_stream(content: object) -> None:
    """Free the empty buffer of a body stream read to its end (docs/decisions/0029-held-poll-memory.md).

    aiohttp keeps the stream until the answer is written, and its empty deque alone is 0.7 KiB per
    held poll. Once at its end nothing feeds or reads the stream (aiohttp only asks whether it is at
    its end), so an empty tuple replaces the deque. A version of aiohttp without `_buffer` only
    costs the memory again.
    """
    at_eof = getattr(content, "at_eof", None)
    if at_eof is not None and at_eof() and hasattr(content, "_buffer"):
        content._buffer = _DRAINED
