"""A send is one database round trip (decision 0022), counted on the wire as the broadcast's are.

Whatever the send meets (a new person or a known one, by id or by email, a replayed or reused
idempotency key, a disabled workspace), and however many messages a batch holds, the driver
sends one Sync: one statement, no BEGIN/COMMIT, no read-back. Personalized content adds one read.
"""

from __future__ import annotations

from typing import Any

import asyncpg

import storage
from tests.storage.test_broadcast_round_trips import Usage, WireCounter, measure, wire

__all__ = ["wire"]  # the fixture, shared with the broadcast's round-trip test

ONE = Usage(round_trips=1, statements=1)


def message(title: str = "Hello", ttl_s: int = 3600) -> storage.NewMessage:
    return storage.NewMessage({"title": title, "body": "A message for you"}, ttl_s=ttl_s)


async def send(counted: asyncpg.Pool, workspace: int, **fields: Any) -> storage.SendOutcome:
    title = fields.pop("title", "Hello")
    return await storage.send_message(counted, workspace, message(title), **fields)


async def test_a_single_send_is_one_round_trip_whatever_it_meets(
    wire: tuple[WireCounter, asyncpg.Pool], pool: asyncpg.Pool
) -> None:
    counter, counted = wire
    workspace = (await storage.create_workspace(pool, "w")).workspace.id
    await send(counted, workspace, external_id="warm")  # prepares the statement on the connection
    key = storage.Idempotency("k", b"digest")

    for label, fields, status in (
        ("new person by id", {"external_id": "ada"}, "queued"),
        ("known person by id", {"external_id": "ada"}, "queued"),
        ("new person by email", {"email": "Bob@Example.com"}, "queued"),
        ("known person by email", {"email": "bob@example.com"}, "queued"),
        ("first send with a key", {"external_id": "ada", "idempotency": key}, "queued"),
        ("replay", {"external_id": "ada", "idempotency": key}, "replayed"),
        ("key reused", {"external_id": "ada", "idempotency": storage.Idempotency("k", b"other")}, "key_reused"),
    ):
        usage, outcome = await measure(counter, send(counted, workspace, **fields))
        assert outcome.status == status, label
        assert usage == ONE, (label, usage)

    await pool.execute("UPDATE workspaces SET in_app_enabled = false WHERE id = $1", workspace)
    usage, outcome = await measure(counter, send(counted, workspace, external_id="cyd"))
    assert (outcome.status, usage) == ("disabled", ONE)
    assert await pool.fetchval("SELECT count(*) FROM people WHERE workspace_id = $1 AND external_id = 'cyd'",
                               workspace) == 0


async def test_a_batch_is_one_round_trip_for_100_messages_as_for_1(
    wire: tuple[WireCounter, asyncpg.Pool], pool: asyncpg.Pool
) -> None:
    counter, counted = wire
    workspace = (await storage.create_workspace(pool, "w")).workspace.id
    await storage.send_messages(counted, workspace, [storage.Outgoing(message(), "warm")])
    for size in (1, 100):
        items = [storage.Outgoing(message(f"m{i}"), f"p{i % 7}" if i % 2 else None, None if i % 2 else f"p{i}@x.y")
                 for i in range(size)]
        usage, outcomes = await measure(counter, storage.send_messages(counted, workspace, items))
        assert [o.status for o in outcomes] == ["queued"] * size
        assert usage == ONE, (size, usage)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE workspace_id = $1", workspace) == 102


async def test_a_personalized_send_reads_the_person_first_and_nothing_else(
    wire: tuple[WireCounter, asyncpg.Pool], pool: asyncpg.Pool
) -> None:
    counter, counted = wire
    workspace = (await storage.create_workspace(pool, "w")).workspace.id

    async def render(person: storage.Person) -> dict[str, Any]:
        return {"title": f"Hi {person.attributes.get('first_name', 'there')}", "body": "x"}

    await send(counted, workspace, external_id="warm", render=render)
    await pool.execute("INSERT INTO people (workspace_id, external_id, attributes) VALUES ($1, 'ada', $2)",
                       workspace, {"first_name": "Ada"})
    for who, title in (("ada", "Hi Ada"), ("new", "Hi there")):
        usage, outcome = await measure(counter, send(counted, workspace, external_id=who, render=render))
        assert outcome.status == "queued" and outcome.message is not None
        assert outcome.message.content["title"] == title
        assert usage == Usage(round_trips=2, statements=2), (who, usage)
