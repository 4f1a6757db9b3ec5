"""Sends racing polls answered from memory, across two gateway processes: once, and at once.

Two apps, each with its own pool and listener, share one database and one pinned clock (leases
never run out). Each person has a device on each app; one task per person polls with them in
turn (mostly short polls, sometimes held ones) and reports `shown` for everything it gets, while
a sender sends through either app. Checked on every answer, never timings:

- exactly once: no message reaches two devices, or one device twice;
- at once: a poll that starts after a send to its person returned gets that message (unless an
  earlier poll already did), though the person was remembered as having nothing pending a moment
  before; a held poll parked on memory is woken by the send's notice;
- nothing lost: at the end every message sent was received, and memory answered some polls.

Each app hears its notices and barrier markers late (up to `MAX_LAG_S`, in the order they came), as
a busy process does: without the barrier, a short poll would answer from memory before the notice
of a send that returned before it started, and the test fails.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

import storage
from gateway import Config, create_app
from gateway.core.clock import FixedClock
from gateway.http.keys import LISTENER, MEMORY, POOL
from tests.helpers import Api, wait_until

PEOPLE = 10
MESSAGES = 60
# Most polls are short; a held one waits for the notice of a send that raced its memory lookup.
HELD_SHARE = 0.1
HELD_WAIT_S = 2
# A person's poller gives up (and fails the test) after this many polls without catching up.
MAX_POLLS = 400
# How late an app hears each notice and marker (kept in order); with 5 ms the test caught a missing
# barrier in 2 runs of 3, with 20 ms in 4 of 4.
MAX_LAG_S = 0.02


@pytest.fixture
async def gateways(config: Config, clock: FixedClock, pool: asyncpg.Pool, aiohttp_client) -> tuple[Api, Api]:  # type: ignore[no-untyped-def]
    credentials = await storage.create_workspace(pool, "acme", identity_mode="off")
    first = await aiohttp_client(create_app(config, clock=clock, rng=random.Random(1)))
    second = await aiohttp_client(create_app(config, clock=clock, rng=random.Random(2)))
    assert first.app[POOL] is not second.app[POOL]
    lag_notices(first.app[LISTENER], random.Random(3))
    lag_notices(second.app[LISTENER], random.Random(4))
    return Api(first, credentials), Api(second, credentials)


def lag_notices(listener: storage.Listener, rng: random.Random) -> None:
    """Hand the listener's notices and barrier markers on late, one by one in the order they came."""
    loop = asyncio.get_running_loop()
    queue: deque[tuple[Callable[[Any], None], Any]] = deque()

    def release_oldest() -> None:
        callback, argument = queue.popleft()
        callback(argument)

    def late(callback: Callable[[Any], None]) -> Callable[[Any], None]:
        def hold(argument: Any) -> None:
            queue.append((callback, argument))
            loop.call_later(rng.uniform(0, MAX_LAG_S), release_oldest)
        return hold

    assert listener._on_barrier is not None
    listener._on_notice = late(listener._on_notice)
    listener._on_barrier = late(listener._on_barrier)


@dataclass
class Person:
    user: str  # what the devices poll as
    to: dict[str, str]  # how the sender addresses the person
    sent: list[str] = field(default_factory=list)  # sends that returned, in order


@dataclass
class Ledger:
    received: dict[str, str] = field(default_factory=dict)  # message id -> device
    violations: list[str] = field(default_factory=list)
    sending: bool = True


async def poll_person(person: Person, devices: list[tuple[Api, str]], ledger: Ledger, rng: random.Random) -> None:
    for n in range(MAX_POLLS):
        # Read before the poll starts: every one of these sends had committed by then.
        expected = {m for m in person.sent if m not in ledger.received}
        if not ledger.sending and not expected and n >= len(devices):
            return
        api, device_id = devices[n % len(devices)]
        held = rng.random() < HELD_SHARE
        reply = await api.poll(person.user, device_id, **({"wait": HELD_WAIT_S} if held else {}))
        assert reply.status == 200, reply
        ids = [m["id"] for m in reply.body["messages"]]
        for message_id in ids:
            if message_id in ledger.received:
                ledger.violations.append(f"{message_id} reached {device_id} after {ledger.received[message_id]}")
            ledger.received[message_id] = device_id
            shown = await api.show(person.user, device_id, message_id)
            if shown.status != 200 or shown.body.get("accepted") != 1:
                ledger.violations.append(f"{device_id} could not show {message_id}: {shown}")
        late = expected - set(ids)
        if late:
            kind = "held" if held else "short"
            ledger.violations.append(f"a {kind} poll of {person.user} on {device_id} missed {sorted(late)}")
    ledger.violations.append(f"{person.user} never caught up: {[m for m in person.sent if m not in ledger.received]}")


async def send_all(
    people: list[Person], gateways: tuple[Api, Api], ledger: Ledger, rng: random.Random,
    order: list[Person] | None = None,
) -> None:
    """MESSAGES sends to people picked at random, or one to each person of `order`, in that order."""
    try:
        for n in range(MESSAGES if order is None else len(order)):
            person = rng.choice(people) if order is None else order[n]
            reply = await rng.choice(gateways).send(person.to, "Race")
            assert reply.status == 201, reply
            person.sent.append(str(reply.body["id"]))
            # Let the pollers run between sends, so that people go quiet and are remembered.
            for _ in range(rng.randint(0, 20)):
                await asyncio.sleep(0)
    finally:
        ledger.sending = False


async def test_sends_racing_polls_answered_from_memory_arrive_once_and_at_once(gateways: tuple[Api, Api]) -> None:
    first, second = gateways
    rng = random.Random(2026)
    people = [Person(f"p{i}", {"id": f"p{i}"}) for i in range(PEOPLE - 2)]
    # Two people whose devices poll by an email spelled differently from the sender's.
    people += [Person(f"P{i}@Example.com", {"email": f"p{i}@example.com"}) for i in range(PEOPLE - 2, PEOPLE)]
    ledger = Ledger()

    pollers = [
        poll_person(p, [(first, f"d{i}-a"), (second, f"d{i}-b")], ledger, random.Random(i))
        for i, p in enumerate(people)
    ]
    await asyncio.gather(send_all(people, gateways, ledger, rng), *pollers)

    assert ledger.violations == []
    sent = [m for p in people for m in p.sent]
    assert len(sent) == MESSAGES
    assert sorted(ledger.received) == sorted(sent)
    hits = [await api.metric("mailslot_poll_memory_total", result="hit") for api in gateways]
    assert sum(hits) > 0, hits



async def test_first_messages_racing_first_polls_answered_from_the_census_arrive_once_and_at_once(
    gateways: tuple[Api, Api],
) -> None:
    """A process answers people it has no entry for from its census (decision 0028). Each person
    here gets one message, sent while their two devices (one per process) make their first polls:
    a poll that starts after the send returned must get it (unless the other device already did)."""
    for api in gateways:  # the first poll of a process starts reading its census
        assert (await api.poll("nobody", "warm-up")).status == 200
        await wait_until(lambda api=api: not api.client.app[MEMORY].census_due(), what="the census read")
    rng = random.Random(2027)
    sent: dict[str, str] = {}  # user -> message id, once the send returned
    returned: dict[str, asyncio.Event] = {}
    ledger = Ledger()

    async def yield_a_little() -> None:
        for _ in range(rng.randint(0, 30)):
            await asyncio.sleep(0)

    async def send_each(order: list[str]) -> None:
        """One send at a time (each returns well within a notice's lag), to each person once."""
        for user in order:
            await yield_a_little()
            reply = await rng.choice(gateways).send({"id": user}, "Race")
            assert reply.status == 201, reply
            sent[user] = str(reply.body["id"])
            returned[user].set()

    async def first_poll(user: str, api: Api, device_id: str) -> None:
        if rng.random() < 0.7:  # most polls start just after the send returned, while its notice travels
            await returned[user].wait()
        await yield_a_little()
        expected = sent.get(user)
        if expected in ledger.received:
            expected = None
        reply = await api.poll(user, device_id)
        assert reply.status == 200, reply
        ids = [m["id"] for m in reply.body["messages"]]
        for message_id in ids:
            if message_id in ledger.received:
                ledger.violations.append(f"{message_id} reached {device_id} after {ledger.received[message_id]}")
            ledger.received[message_id] = device_id
        if expected is not None and expected not in ids:
            ledger.violations.append(f"the first poll of {user} on {device_id} missed {expected}")

    async def first_polls(user: str) -> None:
        """One person's two devices one after the other (as in the test above), so that a message
        the first took is known before the second starts."""
        devices = [(first, f"{user}-a"), (second, f"{user}-b")]
        rng.shuffle(devices)
        for api, device_id in devices:
            await first_poll(user, api, device_id)

    people = [f"c{i}" for i in range(PEOPLE * 6)]
    returned.update((user, asyncio.Event()) for user in people)
    first, second = gateways
    order = people[:]
    rng.shuffle(order)
    await asyncio.gather(send_each(order), *(first_polls(user) for user in people))
    for user in people:  # whatever no first poll took is still there for the next
        reply = await first.poll(user, f"{user}-a")
        for message in reply.body["messages"]:
            if ledger.received.setdefault(message["id"], f"{user}-a") != f"{user}-a":
                ledger.violations.append(f"{message['id']} offered again to {user}-a")

    assert ledger.violations == []
    assert sorted(ledger.received) == sorted(sent.values())
    census = [await api.metric("mailslot_poll_memory_total", result="census") for api in gateways]
    assert sum(census) > 0, census
