"""Workers for the accepting site's tests: an app served on a shared listening socket through its
own connection guard and `GuardedSockSite` (gateway/http/sites.py), and a kept-alive client."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from gateway.http.connections import ConnectionGuard
from gateway.http.sites import GuardedSockSite

__all__ = ["Client", "Worker"]


class Worker:
    """One "worker": an app answering its name, served on the shared socket through its own guard."""

    def __init__(self, name: str, sock: socket.socket, max_connections: int, max_per_ip: int = 0) -> None:
        async def who(request: web.Request) -> web.Response:
            return web.Response(text=name)

        app = web.Application()
        app.router.add_get("/who", who)
        self.guard = ConnectionGuard(header_timeout_s=30, max_per_ip=max_per_ip, max_connections=max_connections)
        self.runner = web.AppRunner(app, handle_signals=False)
        self.sock = sock
        self.site: GuardedSockSite | None = None

    async def start(self) -> None:
        await self.runner.setup()
        self.site = GuardedSockSite(self.runner, self.sock.dup(), self.guard)
        await self.site.start()

    async def stop(self) -> None:
        await self.runner.cleanup()


class Client:
    """A kept-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def who(self) -> str:
        self.writer.write(b"GET /who HTTP/1.1\r\nHost: test\r\n\r\n")
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return (await asyncio.wait_for(self.reader.readexactly(length), 10)).decode()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()
