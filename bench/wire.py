"""A minimal keep-alive HTTP/1.1 client on asyncio protocols, for load generators.

Why not aiohttp's client: on a 2-core machine the load generators share the cores with the
server under test, and aiohttp's client spends several times the CPU per request that this
does, CPU taken from the server and from its ceiling alike. This speaks only what the bench
needs: one request at a time per connection, bodies with Content-Length (aiohttp's server and
nginx answer that way), response headers as a dict with lower-case names.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

__all__ = ["Connection", "HttpError", "Response", "connect"]

Response = tuple[int, dict[str, str], bytes]


class HttpError(ConnectionError):
    """The connection closed or the answer could not be read; open a new connection."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._parse()

    def _parse(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None:
            return
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self._buffer) < end + 4 + length:
            return
        body = bytes(self._buffer[end + 4:end + 4 + length])
        del self._buffer[:end + 4 + length]
        waiter, self._waiter = self._waiter, None
        if not waiter.done():
            waiter.set_result((int(head[0].split(" ", 2)[1]), headers, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection lost: {exc}"))

    def send(self, data: bytes) -> asyncio.Future[Response]:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise HttpError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter


class Connection:
    """One connection to `host:port`; `request()` one at a time. Close it when done."""

    def __init__(self, host: str, port: int, protocol: _Protocol) -> None:
        self._host = f"{host}:{port}"
        self._protocol = protocol

    @property
    def closed(self) -> bool:
        return self._protocol.closed

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                      timeout_s: float = 60.0) -> Response:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host}", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/json")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        try:
            return await asyncio.wait_for(self._protocol.send(data), timeout_s)
        except TimeoutError:
            self.close()
            raise HttpError(f"no answer within {timeout_s:.0f}s") from None

    def close(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()


# Linux: bind() to an address without choosing the port yet; connect() then picks one per
# destination. Binding to port 0 instead scans every port bound on that address, which makes
# tens of thousands of connections from one source address crawl.
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


async def connect(host: str, port: int, *, local_addr: str | None = None) -> Connection:
    """A connection to host:port, from `local_addr` (any free port on it) when given."""
    loop = asyncio.get_running_loop()
    if not local_addr:
        _, protocol = await loop.create_connection(_Protocol, host, port)
        return Connection(host, port, protocol)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
        sock.setblocking(False)
        sock.bind((local_addr, 0))
        await loop.sock_connect(sock, (host, port))
        _, protocol = await loop.create_connection(_Protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    return Connection(host, port, protocol)
