"""An events report in one statement: reports apply in order, each message moves once, setup sees the first shown."""

from __future__ import annotations

import asyncio

import asyncpg

import storage
from storage import DeviceReport
from tests.storage.test_storage_api import NOW, send


async def offered(pool: asyncpg.Pool, workspace_id: int, user: str, n: int) -> list[storage.Message]:
    messages = [await send(pool, workspace_id, user) for _ in range(n)]
    await storage.claim_messages(pool, workspace_id, user, "phone", lease_s=300, now=NOW)
    return messages


async def test_reports_apply_in_order_across_several_messages(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    first, second, third = await offered(pool, workspace.id, "ada", 3)
    results = await storage.record_device_events(
        pool, workspace.id, "ada", "phone",
        [
            DeviceReport(second.id, "dismissed"),  # straight from offered
            DeviceReport(first.id, "shown"),
            DeviceReport(second.id, "shown"),  # after dismissed: accepted, the state stays dismissed
            DeviceReport(second.id, "action", "later"),  # dismissed counts as shown for an action
            DeviceReport(first.id, "action", "tour"),
            DeviceReport(first.id, "dismissed"),
            DeviceReport(third.id, "action", "early"),  # never shown: refused
        ],
        now=NOW,
    )
    assert results == [None, None, None, None, None, None, "not_offered_to_device"]

    states = {m.id: await storage.get_message(pool, workspace.id, m.id, NOW) for m in (first, second, third)}
    assert {i: (r.state, r.shown_at, r.device_id) for i, r in states.items() if r} == {
        first.id: ("dismissed", NOW, "phone"),
        second.id: ("dismissed", NOW, "phone"),
        third.id: ("offered", None, "phone"),
    }
    assert [e.type for e in await storage.list_message_events(pool, first.id)][2:] == ["shown", "action", "dismissed"]
    assert [(e.type, e.action) for e in await storage.list_message_events(pool, second.id)][2:] == [
        ("dismissed", None), ("shown", None), ("action", "later"),
    ]
    assert [e.type for e in await storage.list_message_events(pool, third.id)] == ["queued", "offered"]


async def test_the_same_report_twice_in_one_request_is_recorded_once(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    (message,) = await offered(pool, workspace.id, "ada", 1)
    report = [DeviceReport(message.id, "shown"), DeviceReport(message.id, "action", "a")] * 2
    assert await storage.record_device_events(pool, workspace.id, "ada", "phone", report, now=NOW) == [None] * 4
    assert await storage.record_device_events(pool, workspace.id, "ada", "phone", report, now=NOW) == [None] * 4
    assert [e.type for e in await storage.list_message_events(pool, message.id)] == [
        "queued", "offered", "shown", "action",
    ]


async def test_only_a_shown_that_moves_an_offered_message_completes_the_setup(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    (message,) = await offered(pool, workspace.id, "ada", 1)

    async def first_shown() -> tuple[object, object]:
        row = await pool.fetchrow(
            "SELECT first_shown_at, first_shown_platform FROM workspaces WHERE id = $1", workspace.id
        )
        return row["first_shown_at"], row["first_shown_platform"]

    # Dismissed first: the later shown changes nothing, so nothing was shown for the setup status.
    await storage.record_device_events(
        pool, workspace.id, "ada", "phone", [DeviceReport(message.id, "dismissed"), DeviceReport(message.id, "shown")],
        now=NOW, platform="ios",
    )
    assert await first_shown() == (None, None)
    (shown,) = await offered(pool, workspace.id, "bob", 1)
    await storage.record_device_events(
        pool, workspace.id, "bob", "phone", [DeviceReport(shown.id, "shown")], now=NOW, platform="android",
    )
    assert await first_shown() == (NOW, "android")


async def test_an_empty_report_records_nothing(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    assert await storage.record_device_events(pool, workspace.id, "ada", "phone", [], now=NOW) == []


async def test_a_shown_report_does_not_wait_for_a_transaction_holding_the_workspace(pool: asyncpg.Pool) -> None:
    """A broadcast chunk holds its workspace's row (FOR SHARE) for seconds; a first `shown` that
    waited for it held a connection, and every device's report queued behind it (bench s4)."""
    workspace = (await storage.create_workspace(pool, "acme")).workspace
    first, second = await offered(pool, workspace.id, "ada", 2)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM workspaces WHERE id = $1 FOR SHARE", workspace.id)
        report = [DeviceReport(first.id, "shown")]
        results = await asyncio.wait_for(
            storage.record_device_events(pool, workspace.id, "ada", "phone", report, now=NOW), timeout=10
        )
    assert results == [None]
    assert (await storage.get_message(pool, workspace.id, first.id, NOW)).state == "shown"
    # The setup step was left to a later report, which records it once the row is free.
    assert await pool.fetchval("SELECT first_shown_at FROM workspaces WHERE id = $1", workspace.id) is None
    await storage.record_device_events(pool, workspace.id, "ada", "phone", [DeviceReport(second.id, "shown")], now=NOW)
    assert await pool.fetchval("SELECT first_shown_at FROM workspaces WHERE id = $1", workspace.id) == NOW
