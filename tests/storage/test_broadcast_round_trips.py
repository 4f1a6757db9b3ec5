"""Bulk queueing: a broadcast's database round trips do not grow with its audience.

What the driver sends is counted on the wire: a small TCP proxy between the pool and PostgreSQL
reads the frontend protocol and counts Sync and Query messages (each ends a round trip) and
Execute and Query messages (each runs a statement). This does not depend on which asyncpg
methods the storage code calls; a loop of statements, even pipelined by `executemany`, shows.
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from yarl import URL

import storage
from gateway.core.filters import compile_filter
from gateway.core.personalize import compile_content

SIZES = (10, 1_000)
PLAIN: dict[str, Any] = {"title": "Spring sale", "body": "20% off", "actions": [], "layout": "modal",
                         "element_id": None, "image_url": None}
TEMPLATED: dict[str, Any] = {**PLAIN, "title": "Hi {{ customer.first_name }}",
                             "body": "{{ data.offer }} for {{ customer.id }}"}


class WireCounter:
    """A TCP proxy in front of PostgreSQL that counts the protocol messages clients send."""

    def __init__(self, upstream: URL) -> None:
        self.upstream = upstream
        self.counting = False
        self.sent: Counter[bytes] = Counter()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Listen; returns the DSN to connect through the proxy (no TLS, so the stream can be read)."""
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return str(self.upstream.with_host("127.0.0.1").with_port(port).with_query({"sslmode": "disable"}))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    @property
    def round_trips(self) -> int:
        return self.sent[b"S"] + self.sent[b"Q"]

    @property
    def statements(self) -> int:
        return self.sent[b"E"] + self.sent[b"Q"]

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        assert self.upstream.host is not None and self.upstream.port is not None
        server_r, server_w = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        for coro in (self._frontend(client_r, server_w), self._pipe(server_r, client_w)):
            task = asyncio.create_task(coro)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _frontend(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            # The startup message has no type byte; every later message is type, length, body.
            (length,) = struct.unpack("!i", await reader.readexactly(4))
            writer.write(struct.pack("!i", length) + await reader.readexactly(length - 4))
            while True:
                head = await reader.readexactly(5)
                (length,) = struct.unpack("!i", head[1:])
                writer.write(head + await reader.readexactly(length - 4))
                await writer.drain()
                if self.counting:
                    self.sent[head[:1]] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@dataclass(frozen=True)
class Usage:
    round_trips: int
    statements: int


@pytest.fixture
async def wire(database_url: str) -> AsyncIterator[tuple[WireCounter, asyncpg.Pool]]:
    """The counter and a one-connection pool that talks through it."""
    counter = WireCounter(URL(database_url))
    dsn = await counter.start()
    counted = await storage.create_pool(dsn, min_size=1, max_size=1)
    yield counter, counted
    await counted.close()
    await counter.stop()


async def workspace_of(pool: asyncpg.Pool, name: str, size: int) -> tuple[int, list[str]]:
    """A workspace with `size` people, each with a first name and a tier (half of them gold)."""
    workspace = (await storage.create_workspace(pool, name)).workspace.id
    ids = [f"{name}-{i}" for i in range(size)]
    await storage.import_people(pool, workspace, ids)
    await pool.execute(
        "UPDATE people SET attributes = jsonb_build_object("
        "'first_name', 'P' || id, 'tier', CASE WHEN id % 2 = 0 THEN 'gold' ELSE 'basic' END) "
        "WHERE workspace_id = $1",
        workspace,
    )
    return workspace, ids


def audience_for(kind: str, ids: list[str]) -> storage.Audience:
    if kind == "all":
        return storage.Audience(everyone=True)
    if kind == "ids":
        return storage.Audience(ids=tuple(ids))
    spec = {"attribute": "tier", "op": "eq", "value": "gold"}
    compiled = compile_filter(spec)
    return storage.Audience(filter=storage.AudienceFilter(compiled.path, compiled.vars, spec))


def renderer(
    content: dict[str, Any],
) -> Callable[[list[storage.AudienceMember]], Awaitable[list[dict[str, Any]]]] | None:
    if content is PLAIN:
        return None
    compiled = compile_content(content, strict=True)

    async def render(people: list[storage.AudienceMember]) -> list[dict[str, Any]]:
        return [compiled.render(
            {"customer": {**person.attributes, "id": person.external_id, "email": person.email},
             "data": {"offer": "20% off"}}
        ) for person in people]

    return render


async def send(counted: asyncpg.Pool, workspace: int, kind: str, ids: list[str],
               content: dict[str, Any]) -> storage.Broadcast:
    outcome = await storage.send_broadcast(
        counted, workspace, audience_for(kind, ids), storage.NewMessage(content, ttl_s=3600), render=renderer(content)
    )
    assert outcome.status == "queued" and outcome.broadcast is not None, outcome
    return outcome.broadcast


async def measure(counter: WireCounter, action: Awaitable[Any]) -> tuple[Usage, Any]:
    """What awaiting `action` sent (a coroutine runs only when awaited, so only its traffic counts)."""
    counter.sent.clear()
    counter.counting = True
    try:
        result = await action
    finally:
        counter.counting = False
    return Usage(counter.round_trips, counter.statements), result


@pytest.mark.parametrize("kind", ["all", "ids", "filter"])
@pytest.mark.parametrize("content", [PLAIN, TEMPLATED], ids=["plain", "templated"])
async def test_a_broadcast_makes_as_many_round_trips_for_1000_people_as_for_10(
    wire: tuple[WireCounter, asyncpg.Pool], pool: asyncpg.Pool, kind: str, content: dict[str, Any]
) -> None:
    counter, counted = wire
    # Once first, so that the connection has prepared every statement and learnt every type.
    warm, warm_ids = await workspace_of(pool, "warm", 3)
    await send(counted, warm, kind, warm_ids, content)

    usage: dict[int, Usage] = {}
    for size in SIZES:
        workspace, ids = await workspace_of(pool, f"w{size}", size)
        usage[size], broadcast = await measure(counter, send(counted, workspace, kind, ids, content))
        expected = size // 2 if kind == "filter" else size
        assert (broadcast.queued, broadcast.total) == (expected, expected)
        if content is TEMPLATED:
            rows = await pool.fetch(
                "SELECT p.external_id, p.attributes ->> 'first_name' AS name, m.content ->> 'title' AS title "
                "FROM messages m JOIN people p ON p.id = m.person_id WHERE m.broadcast_id = $1", broadcast.id)
            assert len(rows) == expected
            assert all(r["title"] == f"Hi {r['name']}" for r in rows)
    assert usage[SIZES[0]] == usage[SIZES[1]], usage
    assert 0 < usage[SIZES[1]].round_trips <= 10, usage


@pytest.mark.parametrize("content", [PLAIN, TEMPLATED], ids=["plain", "templated"])
async def test_resend_and_recall_make_as_many_round_trips_for_1000_people_as_for_10(
    wire: tuple[WireCounter, asyncpg.Pool], pool: asyncpg.Pool, content: dict[str, Any]
) -> None:
    counter, counted = wire
    warm, warm_ids = await workspace_of(pool, "warm", 3)
    warmed = await send(counted, warm, "all", warm_ids, content)
    await storage.resend_broadcast(counted, warm, warmed.id)
    await storage.recall_broadcast(counted, warm, warmed.id)

    resends: dict[int, Usage] = {}
    recalls: dict[int, Usage] = {}
    for size in SIZES:
        workspace, ids = await workspace_of(pool, f"w{size}", size)
        sent = await send(counted, workspace, "all", ids, content)
        resends[size], resent = await measure(counter, storage.resend_broadcast(counted, workspace, sent.id))
        assert resent.status == "resent" and resent.broadcast.queued == size, resent
        recalls[size], recalled = await measure(
            counter, storage.recall_broadcast(counted, workspace, sent.id))
        assert recalled.recalled == 2 * size, recalled
    assert resends[SIZES[0]] == resends[SIZES[1]], resends
    assert recalls[SIZES[0]] == recalls[SIZES[1]], recalls
    assert resends[SIZES[1]].round_trips <= 3 and recalls[SIZES[1]].round_trips <= 6, (resends, recalls)


async def test_the_counter_sees_a_loop_of_statements(wire: tuple[WireCounter, asyncpg.Pool]) -> None:
    """The measure can fail: one statement per person, even pipelined, grows with the audience."""
    counter, counted = wire

    async def one_by_one(n: int) -> None:
        async with counted.acquire() as conn:
            await conn.executemany("SELECT $1::int", [(i,) for i in range(n)])
            for i in range(n):
                await conn.fetchval("SELECT $1::int", i)

    few, _ = await measure(counter, one_by_one(10))
    many, _ = await measure(counter, one_by_one(100))
    assert many.statements - few.statements == 2 * 90, (few, many)
    assert many.round_trips - few.round_trips >= 90, (few, many)
