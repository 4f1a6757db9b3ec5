"""Polls answered from memory (gateway/core/memory.py, docs/decisions/0021-answer-from-memory.md).

Every way a message becomes claimable must reach a poll of a person remembered as having nothing
pending: sends and broadcasts through another process, an email linked later, a lease that runs
out with no notice, a notice lost while the listener was away. Where the test needs a notice to
be late, it holds the listener's callbacks and releases them in order, as a slow network would.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from gateway import Config, create_app
from gateway.core.clock import FixedClock
from gateway.http.keys import LISTENER, MEMORY
from tests.helpers import Api, Reply, wait_until

StartGateway = Callable[..., Awaitable[Api]]


@pytest.fixture
def config(config: Config) -> Config:
    return dataclasses.replace(config, listener_probe_s=1.0)


@pytest.fixture
async def start_gateway(aiohttp_client, config: Config, clock: FixedClock, api: Api) -> StartGateway:  # type: ignore[no-untyped-def]
    """Another gateway app (another process, as far as the database can tell) on the same workspace."""

    async def start(**settings: Any) -> Api:
        app = create_app(dataclasses.replace(config, **settings), clock=clock, rng=random.Random(13))
        return Api(await aiohttp_client(app), api.credentials)

    return start


def remembered(api: Api, user: str, device_id: str | None = None) -> bool:
    return api.client.app[MEMORY].get(api.workspace.id, user, device_id) is not None


async def empty_poll(api: Api, user: str, device_id: str = "phone") -> Reply:
    reply = await api.poll(user, device_id)
    assert reply.status == 200, reply
    assert reply.body["messages"] == [], reply
    return reply


async def quiet(api: Api, user: str, device_id: str = "phone") -> None:
    """Poll until this process remembers `user` as having nothing pending."""
    await empty_poll(api, user, device_id)
    assert remembered(api, user, device_id)


async def sent_id(api: Api, to: dict[str, str] | str, title: str = "Hello") -> str:
    sent = await api.send(to, title)
    assert sent.status == 201, sent
    return str(sent.body["id"])


class HeldNotices:
    """Hold an app's listener callbacks (notices and barrier markers) and release them in order."""

    def __init__(self, api: Api) -> None:
        self.listener = api.client.app[LISTENER]
        self.held: list[tuple[Callable[[Any], None], Any]] = []
        self._on_notice = self.listener._on_notice
        self._on_barrier = self.listener._on_barrier
        assert self._on_barrier is not None
        self.listener._on_notice = lambda notice: self.held.append((self._on_notice, notice))
        self.listener._on_barrier = lambda token: self.held.append((self._on_barrier, token))

    def release(self) -> None:
        self.listener._on_notice = self._on_notice
        self.listener._on_barrier = self._on_barrier
        for callback, argument in self.held:
            callback(argument)
        self.held.clear()


async def poll_behind(late: HeldNotices, api: Api, user: str) -> Reply:
    """A short poll that starts after a notice reached this process but before it was handled."""
    await wait_until(lambda: len(late.held) >= 1, what="the notice arrived (held)")
    poll = api.hold(user, "phone", wait=0)
    await wait_until(lambda: len(late.held) >= 2 or poll.done(), what="the poll's barrier marker (held)")
    assert not poll.done(), "answered before a notice committed ahead of the poll was handled"
    late.release()
    return await poll


async def test_an_empty_short_poll_is_answered_from_memory_with_its_tier(api: Api, clock: FixedClock) -> None:
    message_id = await sent_id(api, "ada")
    assert (await api.poll("ada", "phone")).message_ids == [message_id]
    assert (await api.show("ada", "phone", message_id)).status == 200
    claimed = await api.metric("mailslot_poll_memory_total", result="miss")

    first = await empty_poll(api, "ada")
    assert remembered(api, "ada", "phone")
    second = await empty_poll(api, "ada")

    assert await api.metric("mailslot_poll_memory_total", result="hit") == 1
    assert await api.metric("mailslot_poll_memory_total", result="miss") == claimed + 1
    # The tier's fact (a message in the last 30 days) came from memory too.
    assert first.body["tier"] == second.body["tier"] == "inactive"
    assert 54 <= second.body["next_poll_s"] <= 66
    assert second.headers["X-Mailslot-Next-Poll"] == str(second.body["next_poll_s"])
    # Entries live `quiet_ttl_s` on the app's clock: a month later the tier is read afresh.
    clock.advance(days=31)
    assert not remembered(api, "ada")
    assert (await empty_poll(api, "ada")).body["tier"] == "low"
    assert (await empty_poll(api, "ada")).body["tier"] == "low"
    assert await api.metric("mailslot_poll_memory_total", result="hit") == 2


async def test_another_device_of_a_remembered_person_still_claims_once(api: Api) -> None:
    await quiet(api, "ada", "phone")
    assert not remembered(api, "ada", "tablet")
    await empty_poll(api, "ada", "tablet")  # goes to the database: its last poll is recorded
    assert await api.metric("mailslot_poll_memory_total", result="hit") == 0
    await empty_poll(api, "ada", "tablet")
    assert await api.metric("mailslot_poll_memory_total", result="hit") == 1


async def test_a_short_poll_waits_for_a_late_notice_of_a_message_sent_through_another_process(
    api: Api, start_gateway: StartGateway
) -> None:
    """The barrier: the poll may not answer until every notice committed before it was heard."""
    other = await start_gateway()
    await quiet(api, "ada")
    late = HeldNotices(api)
    message_id = await sent_id(other, "ada")  # committed; its notice reaches `api` and is held

    reply = await poll_behind(late, api, "ada")
    assert reply.message_ids == [message_id]


async def test_a_held_poll_parked_on_memory_wakes_on_a_send_through_another_process(
    api: Api, start_gateway: StartGateway
) -> None:
    other = await start_gateway()
    await quiet(api, "ada")
    held = api.hold("ada", "phone", wait=30)
    await wait_until(lambda: len(api.client.app[MEMORY]) == 1 and not held.done(), what="parked")
    await wait_until(lambda: api.metric("mailslot_poll_memory_total", result="hit"), what="parked from memory")
    message_id = await sent_id(other, "ada")
    assert (await held).message_ids == [message_id]


async def test_a_lease_that_runs_out_without_any_notice_frees_the_message_for_another_device(
    api: Api, start_gateway: StartGateway, clock: FixedClock
) -> None:
    other = await start_gateway()
    await quiet(api, "ada", "tablet")  # remembered before the send
    message_id = await sent_id(api, "ada")
    assert (await other.poll("ada", "phone")).message_ids == [message_id]  # leased, never shown

    # Nothing for the tablet while the lease holds, and nothing remembered: the lease will run out
    # with no notice, so memory may not answer for ada.
    await empty_poll(api, "ada", "tablet")
    await empty_poll(api, "ada", "tablet")
    assert not remembered(api, "ada")
    clock.advance(seconds=api.workspace.lease_s + 1)

    assert (await api.poll("ada", "tablet")).message_ids == [message_id]


async def test_a_message_whose_notice_was_lost_with_the_listener_reaches_a_remembered_person(
    api: Api, pool: asyncpg.Pool, server_url: str
) -> None:
    listener = api.client.app[LISTENER]
    await quiet(api, "ada")
    database = await pool.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(server_url)
    try:
        # Keep the listener out while the message is sent: its notice is lost for good.
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            pid = listener.backend_pid
            assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid) is True
            await wait_until(lambda: not listener.connected.is_set(), what="the listener noticed")
            assert not remembered(api, "ada")
            message_id = await sent_id(api, "ada")
            # While the listener is away, polls go to the database.
            assert (await api.poll("ada", "phone")).message_ids == [message_id]
            assert (await api.show("ada", "phone", message_id)).status == 200
            second = await sent_id(api, "ada")
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()
    await wait_until(lambda: listener.connected.is_set(), within=15, what="the listener reconnected")
    assert not remembered(api, "ada")
    assert (await api.poll("ada", "phone")).message_ids == [second]


async def test_a_filter_broadcast_through_another_process_reaches_remembered_people(
    api: Api, start_gateway: StartGateway
) -> None:
    other = await start_gateway()
    for person, plan in (("ada", "pro"), ("bob", "free")):
        assert (await api.identify(person, plan_name=plan)).status == 200
        await quiet(api, person)
    late = HeldNotices(api)
    sent = await other.request("POST", "/v1/broadcasts", json={
        "audience": {"filter": {"attribute": "plan_name", "op": "eq", "value": "pro"}},
        "content": {"title": "Pro news"},
    })
    assert sent.status == 201, sent
    reply = await poll_behind(late, api, "ada")
    assert [m["content"]["title"] for m in reply.body["messages"]] == ["Pro news"]
    await empty_poll(api, "bob")


async def test_a_resent_broadcast_reaches_a_person_remembered_after_the_first_send(
    api: Api, start_gateway: StartGateway
) -> None:
    other = await start_gateway()
    sent = await other.request("POST", "/v1/broadcasts", json={"audience": {"ids": ["ada"]},
                                                                "content": {"title": "Again"}})
    assert sent.status == 201, sent
    first = await api.poll("ada", "phone")
    [message] = first.body["messages"]
    assert (await api.show("ada", "phone", message["id"])).status == 200
    await quiet(api, "ada")
    resent = await other.request("POST", f"/v1/broadcasts/{sent.body['id']}/resend")
    assert resent.status == 200, resent
    reply = await api.poll("ada", "phone")
    assert [m["content"]["title"] for m in reply.body["messages"]] == ["Again"]


async def test_an_email_linked_later_reaches_a_device_that_polls_by_email(
    api: Api, start_gateway: StartGateway
) -> None:
    other = await start_gateway()
    await quiet(api, "Ada@Example.com")  # nobody has this email yet
    message_id = await sent_id(other, "ada")
    assert (await other.identify("ada", email="ada@example.com")).status == 200
    assert (await api.poll("Ada@Example.com", "phone")).message_ids == [message_id]


async def test_a_triggered_message_reaches_a_remembered_person(api: Api, start_gateway: StartGateway) -> None:
    other = await start_gateway()
    created = await other.request("POST", "/v1/triggers", json={
        "event": "upgraded", "message": {"content": {"title": "Thanks"}},
    })
    assert created.status == 201, created
    await quiet(api, "ada")
    tracked = await other.request("POST", "/v1/people/ada/events", json={"name": "upgraded"})
    assert tracked.status in (200, 201, 202), tracked
    reply = await api.poll("ada", "phone")
    assert [m["content"]["title"] for m in reply.body["messages"]] == ["Thanks"]


async def test_with_the_setting_off_every_poll_claims(api: Api, start_gateway: StartGateway) -> None:
    off = await start_gateway(poll_cache=False)
    await empty_poll(off, "ada")
    await empty_poll(off, "ada")
    assert not remembered(off, "ada")
    assert await off.metric("mailslot_poll_memory_total", result="hit") == 0
    assert await off.metric("mailslot_poll_memory_total", result="off") == 2


async def test_a_short_poll_from_memory_waits_on_a_marker_sent_on_the_listening_connection(api: Api) -> None:
    await quiet(api, "ada")
    await empty_poll(api, "ada")

    assert await api.metric("mailslot_poll_memory_total", result="hit") == 1
    assert await api.metric("mailslot_barrier_rounds_total", result="heard") >= 1
    assert await api.metric("mailslot_barrier_polls_total") >= 1
    assert await api.metric("mailslot_barrier_rounds_total", result="failed") == 0


async def test_a_person_no_entry_knows_is_answered_from_the_census_with_the_low_tier(api: Api) -> None:
    message_id = await sent_id(api, "ada")
    assert (await api.poll("ada", "phone")).message_ids == [message_id]  # the first poll reads the census
    await wait_until(lambda: not api.client.app[MEMORY].census_due(), what="the census read")

    bob = await empty_poll(api, "bob", "laptop")  # never polled, never sent anything

    assert await api.metric("mailslot_poll_memory_total", result="census") == 1
    assert bob.body["tier"] == "low"
    assert remembered(api, "bob", "laptop")
    # ada's message is offered: the census lists her, so another device of hers claims.
    assert (await api.poll("ada", "tablet")).body["messages"] == []
    assert await api.metric("mailslot_poll_memory_total", result="census") == 1


async def test_a_person_the_census_did_not_list_gets_a_message_sent_after_it_was_read(api: Api) -> None:
    await empty_poll(api, "nobody")
    await wait_until(lambda: not api.client.app[MEMORY].census_due(), what="the census read")
    message_id = await sent_id(api, "bob")

    assert (await api.poll("bob", "laptop")).message_ids == [message_id]
    assert await api.metric("mailslot_poll_memory_total", result="census") == 0
