"""Held polls in one process: answered the moment a message is sent, capped, counted, and woken
again when the LISTEN connection comes back.

A held poll runs as a task; the test waits (with a timeout) until the poll is parked and its
claim has finished (the pool is idle), then acts. Assertions are on what each poll returned and
on the registry and counters, never on how long anything took: a poll that returns a message
sent after it parked was woken, because a timed-out poll answers with its earlier, empty claim.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from gateway import Config, create_app
from gateway.core.clock import FixedClock
from gateway.core.poll import HELD_SPREAD
from gateway.http.keys import CONFIG, LISTENER, MEMORY, POOL, WAITERS
from tests.helpers import Api, Reply, metric_value, wait_until

# Far longer than any test runs: a held poll that returns did not run out of time.
LONG_WAIT = 30
# How long a test waits for an answer that must come at once (or on a wake-up).
ANSWER_TIMEOUT = 10

StartGateway = Callable[..., Awaitable[Api]]


@pytest.fixture
def config(config: Config) -> Config:
    # A pool that opens every connection at start: "all connections idle" then means "no claim
    # is running", which a connection still being opened for a claim would otherwise fake.
    return dataclasses.replace(config, max_wait_s=LONG_WAIT, listener_probe_s=1.0, pool_min=4, pool_max=4)


@pytest.fixture
async def start_gateway(aiohttp_client, config: Config, clock: FixedClock, api: Api) -> StartGateway:  # type: ignore[no-untyped-def]
    """Another gateway app on the same database and workspace, with some settings changed."""

    async def start(**settings: Any) -> Api:
        app = create_app(dataclasses.replace(config, **settings), clock=clock, rng=random.Random(11))
        return Api(await aiohttp_client(app), api.credentials)

    return start


async def parked(api: Api, count: int) -> None:
    """Wait until `count` polls are parked in this app and no claim is running."""
    app = api.client.app
    waiters, pool, size = app[WAITERS], app[POOL], app[CONFIG].pool_max
    await wait_until(
        lambda: len(waiters) == count and pool.get_idle_size() == size,
        what=f"{count} parked polls and {size} idle connections (now {len(waiters)} parked, "
             f"{pool.get_idle_size()} of {pool.get_size()} connections idle)",
    )


async def answer(task: asyncio.Task[Reply]) -> Reply:
    reply = await asyncio.wait_for(task, ANSWER_TIMEOUT)
    assert reply.status == 200, reply
    assert reply.headers["X-Mailslot-Next-Poll"] == str(reply.body["next_poll_s"])
    return reply


async def sent_id(api: Api, to: dict[str, str] | str, title: str = "Hello") -> str:
    sent = await api.send(to, title)
    assert sent.status == 201, sent
    return str(sent.body["id"])


async def test_a_held_poll_is_answered_with_a_message_sent_while_it_waits(api: Api) -> None:
    held = api.hold("user-1", "phone", wait=LONG_WAIT)
    await parked(api, 1)
    assert not held.done()

    message_id = await sent_id(api, "user-1", "Welcome")

    reply = await answer(held)
    assert reply.message_ids == [message_id]
    assert reply.body["messages"][0]["content"]["title"] == "Welcome"
    assert reply.body["tier"] == "active"
    assert len(api.client.app[WAITERS]) == 0
    assert await api.event_types(message_id) == ["queued", "offered"]
    metrics = await api.metrics_text()
    assert metric_value(metrics, "mailslot_wakeups_total", reason="message") == 1
    assert metric_value(metrics, "mailslot_polls_total", outcome="messages") == 1


async def test_a_held_poll_of_an_email_is_woken_by_a_send_to_that_email(api: Api) -> None:
    held = api.hold("Ann@Example.com", "phone", wait=LONG_WAIT)
    await parked(api, 1)

    message_id = await sent_id(api, {"email": "ann@example.com"})

    assert (await answer(held)).message_ids == [message_id]


async def test_a_message_for_someone_else_does_not_answer_a_held_poll(api: Api, other_api: Api) -> None:
    held = api.hold("user-1", "phone", wait=LONG_WAIT)
    await parked(api, 1)

    await sent_id(api, "user-2")
    await sent_id(other_api, "user-1")  # the same id in another workspace
    await parked(api, 1)
    assert not held.done()

    message_id = await sent_id(api, "user-1")
    assert (await answer(held)).message_ids == [message_id]


async def test_when_the_wait_runs_out_the_answer_is_empty_with_the_next_interval(api: Api) -> None:
    reply = await answer(api.hold("user-1", "phone", wait=1))

    assert reply.body["messages"] == []
    assert reply.body["tier"] == "low"
    assert reply.body["next_poll_s"] > 0
    assert len(api.client.app[WAITERS]) == 0
    metrics = await api.metrics_text()
    assert metric_value(metrics, "mailslot_polls_total", outcome="timeout") == 1
    assert metric_value(metrics, "mailslot_wakeups_total", reason="timeout") == 1


async def test_held_polls_parked_together_are_answered_spread_over_the_last_tenth_of_their_wait(api: Api) -> None:
    # Devices that connect together (a deploy, a restart) must not come back together every
    # `wait` for as long as they stay: each held poll's deadline is drawn in [0.9 wait, wait].
    loop = asyncio.get_running_loop()
    count = 40
    started = loop.time()
    tasks = [api.hold(f"user-{i}", "phone", wait=LONG_WAIT) for i in range(count)]
    await parked(api, count)
    settled = loop.time()

    deadlines = api.client.app[WAITERS].deadlines()

    assert len(deadlines) == count
    tick = 0.25  # the expiry ticker rounds a deadline up to its next tick
    assert min(deadlines) >= started + (1 - HELD_SPREAD) * LONG_WAIT, (started, deadlines)
    assert max(deadlines) <= settled + LONG_WAIT + tick, (settled, deadlines)
    # Forty draws over 3 s: all of them within half of it has a chance below 1e-10.
    assert max(deadlines) - min(deadlines) >= HELD_SPREAD * LONG_WAIT / 2, sorted(deadlines)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_wait_beyond_the_maximum_is_cut_to_it(start_gateway: StartGateway) -> None:
    api = await start_gateway(max_wait_s=1)

    # Held for max_wait_s (1 s), not for the wait asked for, which the timeout would not allow.
    replies = await asyncio.gather(answer(api.hold("user-1", "phone", wait=LONG_WAIT)),
                                   answer(api.hold("user-1", "laptop", wait=3600)))

    for reply in replies:
        assert reply.body["messages"] == []
        assert reply.body["tier"] == "low"
    assert metric_value(await api.metrics_text(), "mailslot_polls_total", outcome="timeout") == 2


@pytest.mark.parametrize("wait", [3600.5, 3601, 86400, -1, -0.001, "5", True, None, [5]])
async def test_a_wait_out_of_range_or_not_a_number_is_422(api: Api, wait: Any) -> None:
    reply = await api.poll("user-1", "phone", wait=wait)

    assert (reply.status, reply.error_code) == (422, "invalid_fields"), reply
    assert "wait" in reply.body["error"]["message"]


async def test_a_poll_is_answered_at_once_when_a_message_already_waits(api: Api) -> None:
    message_id = await sent_id(api, "user-1")

    reply = await answer(api.hold("user-1", "phone", wait=LONG_WAIT))

    assert reply.message_ids == [message_id]
    assert len(api.client.app[WAITERS]) == 0
    # Within the lease the same device gets its offered message again, also at once.
    assert (await answer(api.hold("user-1", "phone", wait=LONG_WAIT))).message_ids == [message_id]


async def test_polls_over_the_per_person_cap_get_an_ordinary_answer_at_once(start_gateway: StartGateway) -> None:
    api = await start_gateway(max_parked_per_person=2)
    phone = api.hold("user-1", "phone", wait=LONG_WAIT)
    laptop = api.hold("user-1", "laptop", wait=LONG_WAIT)
    await parked(api, 2)

    extra = await answer(api.hold("user-1", "tablet", wait=LONG_WAIT))

    assert extra.body["messages"] == []
    assert extra.body["tier"] == "low"
    assert not phone.done() and not laptop.done()
    assert metric_value(await api.metrics_text(), "mailslot_polls_total", outcome="not_held") == 1
    # Another person is not affected by user-1's cap.
    other = api.hold("user-2", "phone", wait=LONG_WAIT)
    await parked(api, 3)

    # The held polls still get messages: one each, since the first device to claim wins.
    first = await sent_id(api, "user-1")
    done, _ = await asyncio.wait([phone, laptop], timeout=ANSWER_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    [winner] = done
    [loser] = {phone, laptop} - done
    assert (await answer(winner)).message_ids == [first]
    await parked(api, 2)
    second = await sent_id(api, "user-1")
    assert (await answer(loser)).message_ids == [second]
    third = await sent_id(api, "user-2")
    assert (await answer(other)).message_ids == [third]


async def test_polls_over_the_per_process_cap_get_an_ordinary_answer_at_once(start_gateway: StartGateway) -> None:
    api = await start_gateway(max_parked=2)
    held = {user: api.hold(user, "phone", wait=LONG_WAIT) for user in ("user-1", "user-2")}
    await parked(api, 2)

    extra = await answer(api.hold("user-3", "phone", wait=LONG_WAIT))

    assert extra.body["messages"] == []
    assert not any(task.done() for task in held.values())
    assert metric_value(await api.metrics_text(), "mailslot_polls_total", outcome="not_held") == 1
    # A poll over the cap still gets a message that waits for it.
    waiting = await sent_id(api, "user-3")
    assert (await answer(api.hold("user-3", "phone", wait=LONG_WAIT))).message_ids == [waiting]

    # Once a held poll is answered, its place is free again.
    first = await sent_id(api, "user-1")
    assert (await answer(held["user-1"])).message_ids == [first]
    held["user-4"] = api.hold("user-4", "phone", wait=LONG_WAIT)
    await parked(api, 2)
    for user in ("user-2", "user-4"):
        message_id = await sent_id(api, user)
        assert (await answer(held[user])).message_ids == [message_id]
    assert len(api.client.app[WAITERS]) == 0


async def test_two_devices_of_one_person_parked_in_one_process_one_gets_the_message(api: Api) -> None:
    phone = api.hold("user-1", "phone", wait=LONG_WAIT)
    laptop = api.hold("user-1", "laptop", wait=LONG_WAIT)
    await parked(api, 2)

    first = await sent_id(api, "user-1", "First")

    done, _ = await asyncio.wait([phone, laptop], timeout=ANSWER_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    [winner] = done
    [loser] = {phone, laptop} - done
    assert (await answer(winner)).message_ids == [first]
    # The other device was woken too, claimed nothing, and parked again.
    await parked(api, 1)
    assert not loser.done()
    assert metric_value(await api.metrics_text(), "mailslot_wakeups_total", reason="message") == 2

    # Its next answer carries the next message, never the first.
    second = await sent_id(api, "user-1", "Second")
    assert (await answer(loser)).message_ids == [second]
    assert await api.event_types(first) == ["queued", "offered"]


async def test_metrics_are_exposed_in_prometheus_text(api: Api) -> None:
    before = await api.metrics_text()
    assert metric_value(before, "mailslot_parked_polls") == 0
    assert metric_value(before, "mailslot_listener_reconnects_total") == 0
    assert "# TYPE mailslot_parked_polls gauge" in before
    assert "# TYPE mailslot_listener_reconnects_total counter" in before

    assert (await api.poll("user-1", "phone")).status == 200
    held = api.hold("user-1", "phone", wait=LONG_WAIT)
    await parked(api, 1)
    during = await api.metrics_text()
    assert metric_value(during, "mailslot_parked_polls") == 1
    message_id = await sent_id(api, "user-1")
    assert (await answer(held)).message_ids == [message_id]

    after = await api.metrics_text()
    names = {line.split("{")[0].split(" ")[0] for line in after.splitlines() if not line.startswith("#")}
    for name in ("mailslot_parked_polls", "mailslot_polls_total", "mailslot_wakeups_total",
                 "mailslot_listener_reconnects_total", "mailslot_claimed_messages_total",
                 "mailslot_notification_lag_seconds_bucket", "mailslot_request_duration_seconds_bucket"):
        assert name in names, name
    assert metric_value(after, "mailslot_parked_polls") == 0
    assert metric_value(after, "mailslot_polls_total", outcome="empty") == 1
    assert metric_value(after, "mailslot_polls_total", outcome="messages") == 1
    assert metric_value(after, "mailslot_wakeups_total", reason="message") == 1
    assert metric_value(after, "mailslot_claimed_messages_total") == 1
    assert metric_value(after, "mailslot_notification_lag_seconds_count") == 1
    assert metric_value(after, "mailslot_request_duration_seconds_count", route="device.poll") == 2


async def terminate_listener(api: Api, pool: asyncpg.Pool) -> int:
    """pg_terminate_backend the app's LISTEN connection from another connection; its old pid."""
    listener = api.client.app[LISTENER]
    pid = listener.backend_pid
    assert pid is not None and listener.connected.is_set()
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid) is True
    return pid


async def test_a_terminated_listener_reconnects_and_wakes_the_parked_polls(api: Api, pool: asyncpg.Pool) -> None:
    listener = api.client.app[LISTENER]
    held = api.hold("user-1", "phone", wait=LONG_WAIT)
    await parked(api, 1)

    old_pid = await terminate_listener(api, pool)
    await wait_until(lambda: listener.connected.is_set() and listener.backend_pid != old_pid,
                     what="the listener reconnected")

    # Woken by the reconnect, the poll claimed again, found nothing and parked again.
    await parked(api, 1)
    assert not held.done()
    metrics = await api.metrics_text()
    assert metric_value(metrics, "mailslot_listener_reconnects_total") == 1
    assert metric_value(metrics, "mailslot_wakeups_total", reason="reconnect") == 1
    # The new connection hears sends.
    message_id = await sent_id(api, "user-1")
    assert (await answer(held)).message_ids == [message_id]


async def test_a_message_sent_while_the_listener_is_down_reaches_a_held_poll(
    api: Api, pool: asyncpg.Pool, server_url: str
) -> None:
    listener = api.client.app[LISTENER]
    held = api.hold("user-1", "phone", wait=LONG_WAIT)
    await parked(api, 1)
    database = await pool.fetchval("SELECT current_database()")

    # Keep the listener out until the message is sent: new connections are refused, while the
    # connections already open (the app's pool, the test's) go on working.
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            await terminate_listener(api, pool)
            await wait_until(lambda: not listener.connected.is_set(), what="the listener noticed")
            message_id = await sent_id(api, "user-1")
            # Nobody heard the notification.
            assert not held.done()
            assert len(api.client.app[WAITERS]) == 1
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()

    await asyncio.wait_for(listener.connected.wait(), 15)
    assert (await answer(held)).message_ids == [message_id]
    metrics = await api.metrics_text()
    assert metric_value(metrics, "mailslot_listener_reconnects_total") == 1
    assert metric_value(metrics, "mailslot_wakeups_total", reason="reconnect") == 1


async def test_a_held_poll_of_a_quiet_person_skips_the_claim_and_still_gets_a_new_message(
    api: Api, start_gateway: StartGateway
) -> None:
    """After one claim found nothing pending, held polls park without the database; a message
    sent through another app still reaches them, because its notification forgets the entry."""
    other = await start_gateway()
    first = await answer(api.hold("ada", "phone", wait=0.3))
    assert first.body["messages"] == []
    quiet = api.client.app[MEMORY]
    assert quiet.get(api.workspace.id, "ada") is not None

    before = await api.metric("mailslot_claimed_messages_total")
    task = api.hold("ada", "phone", wait=LONG_WAIT)
    await parked(api, 1)
    message_id = await sent_id(other, "ada")

    reply = await answer(task)
    assert [m["id"] for m in reply.body["messages"]] == [message_id]
    assert await api.metric("mailslot_claimed_messages_total") == before + 1
    assert quiet.get(api.workspace.id, "ada") is None


async def test_a_short_poll_of_a_quiet_person_gets_a_message_sent_just_before_it(
    api: Api, start_gateway: StartGateway
) -> None:
    other = await start_gateway()
    await answer(api.hold("ada", "phone", wait=0.3))
    assert api.client.app[MEMORY].get(api.workspace.id, "ada") is not None
    # Sent through another app: even if its notification had not arrived yet, the short poll
    # waits for a barrier sent after it arrived, which follows that notification.
    message_id = await sent_id(other, "ada")
    reply = await api.poll("ada", "phone")
    assert [m["id"] for m in reply.body["messages"]] == [message_id]


async def test_a_person_with_something_pending_is_never_remembered_as_quiet(api: Api) -> None:
    await sent_id(api, "ada")
    await answer(api.hold("ada", "phone", wait=0.3))  # gets it: offered to the phone
    await answer(api.hold("ada", "tablet", wait=0.3))  # nothing for the tablet, but one is pending
    assert api.client.app[MEMORY].get(api.workspace.id, "ada") is None


async def test_quiet_memory_is_dropped_while_the_listener_is_down(api: Api, pool: asyncpg.Pool) -> None:
    await answer(api.hold("ada", "phone", wait=0.3))
    quiet = api.client.app[MEMORY]
    assert quiet.get(api.workspace.id, "ada") is not None
    await terminate_listener(api, pool)
    await wait_until(lambda: len(quiet) == 0, what="quiet memory cleared after the listener dropped")
