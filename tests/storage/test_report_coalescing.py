"""Concurrent device reports share one statement (decision 0038), and each request still gets its
own per-report answer, exactly as if it had run alone.

Requests started together through one pool are coalesced: the wire counter shows fewer statements
than requests (the test fails if they are not coalesced).
"""

from __future__ import annotations

import asyncio

import asyncpg

import storage
from storage import DeviceReport
from tests.storage.test_broadcast_round_trips import WireCounter, measure
from tests.storage.test_send_round_trips import wire
from tests.storage.test_storage_api import NOW, send

__all__ = ["wire"]


async def offer(pool: asyncpg.Pool, workspace: int, user: str, device: str, n: int = 1) -> list[storage.Message]:
    """`n` messages for `user`, offered to `device`."""
    messages = [await send(pool, workspace, user) for _ in range(n)]
    claim = await storage.claim_messages(pool, workspace, user, device, lease_s=300, now=NOW)
    assert {m.id for m in claim.messages} >= {m.id for m in messages}
    return messages


async def events_of(pool: asyncpg.Pool, message: storage.Message) -> list[tuple[str, str | None, str | None]]:
    return [(e.type, e.device_id, e.action) for e in await storage.list_message_events(pool, message.id)][2:]


async def test_reports_of_many_devices_and_people_go_as_one_statement_each_answered_as_alone(
    wire: tuple[WireCounter, asyncpg.Pool], pool: asyncpg.Pool
) -> None:
    counter, counted = wire
    workspace = (await storage.create_workspace(pool, "acme")).workspace.id
    (warm,) = await offer(pool, workspace, "warm", "w")
    await storage.record_device_events(counted, workspace, "warm", "w", [DeviceReport(warm.id, "shown")], now=NOW)
    (ada_1, ada_2) = await offer(pool, workspace, "ada", "phone", 2)
    (bob_1,) = await offer(pool, workspace, "bob", "laptop")
    (cyd_1,) = await offer(pool, workspace, "cyd", "tablet")
    gone = (await send(pool, workspace, "dan")).id  # queued, never offered
    other = (await storage.create_workspace(pool, "other")).workspace.id
    (foreign,) = await offer(pool, other, "ada", "phone")

    requests = [
        ("ada", "phone", [DeviceReport(ada_1.id, "shown"), DeviceReport(ada_1.id, "action", "open"),
                          DeviceReport(ada_2.id, "action", "early")]),  # ada_2 never shown: refused
        ("bob", "laptop", [DeviceReport(ada_1.id, "shown"),  # ada's message: not bob's device
                           DeviceReport(bob_1.id, "dismissed")]),
        ("cyd", "phone", [DeviceReport(cyd_1.id, "shown")]),  # cyd's message went to her tablet
        ("cyd", "tablet", [DeviceReport(cyd_1.id, "shown"), DeviceReport(gone, "shown"),
                           DeviceReport(foreign.id, "shown")]),  # another workspace's: unknown here
        ("ada", "phone", [DeviceReport(ada_2.id, "shown"), DeviceReport(ada_1.id, "dismissed")]),
    ]
    usage, answers = await measure(counter, asyncio.gather(*(
        storage.record_device_events(counted, workspace, user, device, reports, now=NOW, platform="web")
        for user, device, reports in requests
    )))

    assert usage.statements < len(requests), usage
    assert answers == [
        [None, None, "not_offered_to_device"],
        ["not_offered_to_device", None],
        ["not_offered_to_device"],
        [None, "not_offered_to_device", "unknown_message"],
        [None, None],
    ]
    states = {m.id: await storage.get_message(pool, workspace, m.id, NOW) for m in (ada_1, ada_2, bob_1, cyd_1)}
    assert {k: (m.state, m.device_id) for k, m in states.items() if m} == {
        ada_1.id: ("dismissed", "phone"), ada_2.id: ("shown", "phone"),
        bob_1.id: ("dismissed", "laptop"), cyd_1.id: ("shown", "tablet"),
    }
    assert await events_of(pool, ada_1) == [("shown", "phone", None), ("action", "phone", "open"),
                                            ("dismissed", "phone", None)]
    assert await events_of(pool, ada_2) == [("shown", "phone", None)]
    assert await events_of(pool, bob_1) == [("dismissed", "laptop", None)]
    assert await events_of(pool, cyd_1) == [("shown", "tablet", None)]
    assert (await storage.get_message(pool, other, foreign.id, NOW)).state == "offered"


async def test_one_message_reported_by_two_devices_at_once_goes_to_the_device_it_was_offered_to(
    pool: asyncpg.Pool
) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace.id
    (message,) = await offer(pool, workspace, "ada", "phone")
    for first, second in (("tablet", "phone"), ("phone", "tablet")):
        answers = await asyncio.gather(*(
            storage.record_device_events(pool, workspace, "ada", device, [DeviceReport(message.id, "shown")], now=NOW)
            for device in (first, second)
        ))
        assert dict(zip((first, second), answers, strict=True)) == {
            "phone": [None], "tablet": ["not_offered_to_device"],
        }
    assert await events_of(pool, message) == [("shown", "phone", None)]  # the repeat is recorded once
    assert (await storage.get_message(pool, workspace, message.id, NOW)).state == "shown"


async def test_two_requests_of_one_device_apply_in_the_order_they_came(pool: asyncpg.Pool) -> None:
    """An action in the second request counts the `shown` of the first, as it would one after the other."""
    workspace = (await storage.create_workspace(pool, "acme")).workspace.id
    (message,) = await offer(pool, workspace, "ada", "phone")
    answers = await asyncio.gather(
        storage.record_device_events(pool, workspace, "ada", "phone", [DeviceReport(message.id, "shown")], now=NOW),
        storage.record_device_events(
            pool, workspace, "ada", "phone", [DeviceReport(message.id, "action", "open")], now=NOW),
    )
    assert answers == [[None], [None]]
    assert await events_of(pool, message) == [("shown", "phone", None), ("action", "phone", "open")]

    # And an action that comes before the `shown` is refused, as it would be alone.
    (later,) = await offer(pool, workspace, "ada", "phone")
    answers = await asyncio.gather(
        storage.record_device_events(
            pool, workspace, "ada", "phone", [DeviceReport(later.id, "action", "open")], now=NOW),
        storage.record_device_events(pool, workspace, "ada", "phone", [DeviceReport(later.id, "shown")], now=NOW),
    )
    assert answers == [["not_offered_to_device"], [None]]


async def test_the_first_shown_of_a_batch_records_its_own_requests_platform(pool: asyncpg.Pool) -> None:
    workspace = (await storage.create_workspace(pool, "acme")).workspace.id
    (ada,) = await offer(pool, workspace, "ada", "phone")
    (bob,) = await offer(pool, workspace, "bob", "laptop")
    (cyd,) = await offer(pool, workspace, "cyd", "tablet")
    await asyncio.gather(
        storage.record_device_events(pool, workspace, "ada", "phone", [DeviceReport(ada.id, "dismissed")],
                                     now=NOW, platform="ios"),  # not a shown: no setup step
        storage.record_device_events(pool, workspace, "bob", "laptop", [DeviceReport(bob.id, "shown")],
                                     now=NOW, platform="web"),
        storage.record_device_events(pool, workspace, "cyd", "tablet", [DeviceReport(cyd.id, "shown")],
                                     now=NOW, platform="android"),
    )
    row = await pool.fetchrow("SELECT first_shown_at, first_shown_platform FROM workspaces WHERE id = $1", workspace)
    assert (row["first_shown_at"], row["first_shown_platform"]) == (NOW, "web")


async def test_a_request_the_database_refuses_fails_alone(pool: asyncpg.Pool) -> None:
    """A value the database refuses (a NUL in an action name) fails its own request, not the batch."""
    workspace = (await storage.create_workspace(pool, "acme")).workspace.id
    (message,) = await offer(pool, workspace, "ada", "phone")
    good, bad = await asyncio.gather(
        storage.record_device_events(pool, workspace, "ada", "phone", [DeviceReport(message.id, "shown")], now=NOW),
        storage.record_device_events(
            pool, workspace, "ada", "phone", [DeviceReport(message.id, "action", "a\x00b")], now=NOW),
        return_exceptions=True,
    )
    assert good == [None]
    assert isinstance(bad, Exception) and not isinstance(bad, storage.StorageUnavailable)
    assert await events_of(pool, message) == [("shown", "phone", None)]
