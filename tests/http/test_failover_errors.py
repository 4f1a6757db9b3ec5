"""What a gateway answers while PostgreSQL fails over: 503 with Retry-After, never a 500.

The failover drill (tests/failover) shows this against a real Patroni cluster; here each error
it can surface is pinned down on its own: a connection to a node that became read-only, and a
driver error that escaped translation (asyncpg's InternalClientError is a plain Exception).
"""

from __future__ import annotations

import asyncpg
import pytest

import storage
from gateway import Config
from gateway.http.keys import POOL
from tests.helpers import Api, assert_message_style

POOL_SIZE = 2


@pytest.fixture
def config(database_url: str) -> Config:
    # Every connection open from the start, so that all of them can be made read-only.
    return Config(database_url=database_url, pool_min=POOL_SIZE, pool_max=POOL_SIZE, demo_workspace=False,
                  expire_interval_s=3600)


def assert_changing(reply) -> None:  # type: ignore[no-untyped-def]
    assert reply.status == 503, reply
    assert reply.error_code == "storage_unavailable"
    assert int(reply.headers["Retry-After"]) >= 1
    assert_message_style(reply.body["error"]["message"])


async def demote(pool: asyncpg.Pool) -> set[int]:
    """Make every pooled connection read-only, as connections to a demoted primary are; their backend PIDs."""
    held = [await pool.acquire(timeout=5) for _ in range(POOL_SIZE)]
    try:
        for conn in held:
            await conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        return {conn.get_server_pid() for conn in held}
    finally:
        for conn in held:
            await pool.release(conn)


async def backends(pool: asyncpg.Pool) -> set[int]:
    held = [await pool.acquire(timeout=5) for _ in range(POOL_SIZE)]
    try:
        return {conn.get_server_pid() for conn in held}
    finally:
        for conn in held:
            await pool.release(conn)


async def test_a_send_on_a_read_only_node_is_a_503_and_the_pool_moves_on(client, api: Api) -> None:  # type: ignore[no-untyped-def]
    pool = client.server.app[POOL]
    demoted = await demote(pool)
    assert_changing(await api.send("ada"))
    # The pool dropped every connection to the read-only node: the retry reaches a writable one.
    sent = await api.send("ada")
    assert sent.status == 201, sent
    assert not demoted & await backends(pool)
    # The refused send left nothing behind: one message reaches the device.
    polled = await api.poll("ada", "phone", user_hash=api.hash_for("ada"))
    assert polled.status == 200, polled
    assert len(polled.body["messages"]) == 1


async def test_a_poll_on_a_read_only_node_is_a_503_and_the_next_one_claims(client, api: Api) -> None:  # type: ignore[no-untyped-def]
    assert (await api.send("ada")).status == 201
    pool = client.server.app[POOL]
    await demote(pool)
    assert_changing(await api.poll("ada", "phone", user_hash=api.hash_for("ada")))
    polled = await api.poll("ada", "phone", user_hash=api.hash_for("ada"))
    assert polled.status == 200, polled
    assert len(polled.body["messages"]) == 1


async def test_a_read_only_answer_on_a_healthy_pool_is_only_a_503(client, api: Api) -> None:  # type: ignore[no-untyped-def]
    """Reads keep working on a read-only node; only the first write there is refused."""
    pool = client.server.app[POOL]
    await demote(pool)
    assert (await api.request("GET", "/v1/workspace")).status == 200
    assert_changing(await api.send("ada"))
    assert (await api.send("ada")).status == 201


@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.InternalClientError("cannot perform operation: another operation is in progress"),
    asyncpg.exceptions.TargetServerAttributeNotMatched("None of the hosts match the target attribute requirement"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
], ids=lambda e: type(e).__name__)
async def test_an_untranslated_driver_error_is_still_a_503(
    api: Api, monkeypatch: pytest.MonkeyPatch, exc: BaseException,
) -> None:
    """The error middleware's last net: a driver error that skipped storage's translation."""
    sent = await api.send("ada")

    async def failing(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(storage, "get_message", failing)
    assert_changing(await api.message(sent.body["id"]))


async def test_a_bug_is_still_a_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The net catches database errors only: anything else stays a bug, logged and answered as 500."""
    sent = await api.send("ada")

    async def failing(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(storage, "get_message", failing)
    reply = await api.message(sent.body["id"])
    assert reply.status == 500
    assert reply.error_code == "internal_error"
