"""Races between two gateway processes on one database: first device wins, nothing lost.

Two apps, each with its own pool, share one PostgreSQL database and one pinned clock. Devices of
the same person are spread over both apps and poll concurrently while messages are sent through
either. The assertions are invariants checked on every answer, never timings:

- while the clock stands still, a message is received by one device only (its lease holds);
- no device ever receives a message another device had already shown;
- every report of `shown` for a message offered to the reporting device is accepted;
- after draining (moving the clock past the lease so unshown offers return), every message sent
  is shown on exactly one device, with exactly one `shown` event, and none is lost.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

import storage
from gateway import Config, create_app
from gateway.core.clock import FixedClock
from gateway.http.keys import POOL
from tests.helpers import Api, Reply

# A device drops (never reports) this share of the messages it gets while the clock stands still,
# as a crashed app or a lost response would; draining must bring them back to some device.
DROP_RATE = 0.15
# Enough rounds of "advance past the lease, poll everything, report everything" to drain.
MAX_DRAIN_ROUNDS = 10


@pytest.fixture
async def gateways(config: Config, clock: FixedClock, pool: asyncpg.Pool, aiohttp_client) -> tuple[Api, Api]:  # type: ignore[no-untyped-def]
    """Workspace `acme` served by two separate gateway apps (two pools) on one database."""
    credentials = await storage.create_workspace(pool, "acme", identity_mode="off")
    first = await aiohttp_client(create_app(config, clock=clock, rng=random.Random(1)))
    second = await aiohttp_client(create_app(config, clock=clock, rng=random.Random(2)))
    assert first.app[POOL] is not second.app[POOL]
    return Api(first, credentials), Api(second, credentials)


@dataclass(frozen=True)
class Device:
    api: Api
    user: str  # the identifier this device polls as: the person's id or email
    device_id: str
    person: str

    def __str__(self) -> str:
        return self.device_id


@dataclass
class Ledger:
    """What the test saw: sends, receipts and accepted `shown` reports, checked as they happen."""

    sent: dict[str, str] = field(default_factory=dict)  # message id -> person
    receivers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    shown_by: dict[str, str] = field(default_factory=dict)
    dropped: set[tuple[str, str]] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def received(self, device: Device, reply: Reply, shown_before: dict[str, str]) -> list[str]:
        assert reply.status == 200, reply
        ids = [m["id"] for m in reply.body["messages"]]
        if len(ids) != len(set(ids)):
            self.violations.append(f"{device} got one message twice in one answer: {ids}")
        for message_id in ids:
            if self.sent.get(message_id, device.person) != device.person:
                self.violations.append(f"{device} of {device.person} got {message_id} of {self.sent[message_id]}")
            owner = shown_before.get(message_id)
            if owner is not None and owner != device.device_id:
                self.violations.append(f"{device} got {message_id} after {owner} had shown it")
            self.receivers[message_id].add(device.device_id)
        return ids

    def shown(self, device: Device, message_ids: Iterable[str], reply: Reply) -> None:
        message_ids = list(message_ids)
        assert reply.status == 200, reply
        if reply.body != {"accepted": len(message_ids), "rejected": []}:
            self.violations.append(f"{device} reported shown for messages offered to it: {reply.body}")
            return
        for message_id in message_ids:
            owner = self.shown_by.setdefault(message_id, device.device_id)
            if owner != device.device_id:
                self.violations.append(f"{message_id} shown on {owner} and {device}")


async def poll_and_report(device: Device, ledger: Ledger, rng: random.Random, *, drop: bool) -> int:
    """One device's turn: poll, then report `shown` for what it got (less what it drops)."""
    shown_before = dict(ledger.shown_by)
    ids = ledger.received(device, await device.api.poll(device.user, device.device_id), shown_before)
    to_show = []
    for message_id in ids:
        key = (device.device_id, message_id)
        if drop and (key in ledger.dropped or (key not in ledger.dropped and rng.random() < DROP_RATE)):
            ledger.dropped.add(key)
            continue
        to_show.append(message_id)
    if to_show:
        events = [{"message_id": m, "type": "shown"} for m in to_show]
        ledger.shown(device, to_show, await device.api.report(device.user, device.device_id, *events))
    return len(ids)


async def send(api: Api, person: str, to: dict[str, str], ledger: Ledger, n: int) -> None:
    reply = await api.send(to, f"message {n} for {person}")
    assert reply.status == 201, reply
    ledger.sent[reply.body["id"]] = person


async def run_race(
    apis: tuple[Api, Api],
    clock: FixedClock,
    devices: list[Device],
    addresses: dict[str, list[dict[str, str]]],
    *,
    rounds: int,
    sends_per_round: int,
    seed: int,
) -> Ledger:
    """Concurrent sends and polls while the clock stands still, then drain past the lease."""
    rng = random.Random(seed)
    ledger = Ledger()
    people = sorted(addresses)
    sent = 0
    for _ in range(rounds):
        sends = []
        for _ in range(sends_per_round):
            person = rng.choice(people)
            sends.append(send(rng.choice(apis), person, rng.choice(addresses[person]), ledger, sent))
            sent += 1
        turns = [poll_and_report(d, ledger, rng, drop=True) for d in devices]
        shuffled = [*sends, *turns]
        rng.shuffle(shuffled)
        await asyncio.gather(*shuffled)

    assert ledger.violations == []
    # The clock never moved, so every lease held: each message went to one device only.
    assert {m: r for m, r in ledger.receivers.items() if len(r) > 1} == {}
    assert len(ledger.sent) == rounds * sends_per_round

    lease_s = apis[0].workspace.lease_s
    for _ in range(MAX_DRAIN_ROUNDS):
        clock.advance(seconds=lease_s + 1)
        got = await asyncio.gather(*(poll_and_report(d, ledger, rng, drop=False) for d in devices))
        if sum(got) == 0:
            break
    else:
        pytest.fail(f"still delivering after {MAX_DRAIN_ROUNDS} drain rounds")
    assert ledger.violations == []
    return ledger


async def check_outcome(api: Api, ledger: Ledger, devices: list[Device]) -> None:
    """Every message sent is shown on exactly one device of its person, once, and none is lost."""
    assert set(ledger.shown_by) == set(ledger.sent), "a message was never shown"
    owner_of = {d.device_id: d.person for d in devices}
    semaphore = asyncio.Semaphore(16)

    async def read(message_id: str) -> dict[str, Any]:
        async with semaphore:
            reply = await api.message(message_id)
        assert reply.status == 200, reply
        return dict(reply.body)

    messages = await asyncio.gather(*(read(m) for m in ledger.sent))
    for message in messages:
        message_id, shower = message["id"], ledger.shown_by[message["id"]]
        assert message["state"] == "shown", message
        assert message["device_id"] == shower, message
        assert owner_of[shower] == ledger.sent[message_id]
        by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in message["events"]:
            by_type[event["type"]].append(event)
        assert len(by_type["queued"]) == 1, message["events"]
        assert [e["device_id"] for e in by_type["shown"]] == [shower], message["events"]
        offered_to = {e["device_id"] for e in by_type["offered"]}
        assert shower in offered_to
        assert offered_to <= ledger.receivers[message_id]
        assert set(by_type) <= {"queued", "offered", "shown"}, message["events"]


async def test_three_devices_of_one_person_on_two_gateways(gateways: tuple[Api, Api], clock: FixedClock) -> None:
    first, second = gateways
    devices = [
        Device(first, "ada", "ada-phone", "ada"),
        Device(second, "ada", "ada-laptop", "ada"),
        Device(first, "ada", "ada-tablet", "ada"),
    ]
    ledger = await run_race(gateways, clock, devices, {"ada": [{"id": "ada"}]}, rounds=50, sends_per_round=2, seed=11)
    await check_outcome(second, ledger, devices)
    assert len(ledger.sent) == 100
    # The race did happen: messages were spread over the devices, and dropped ones moved on.
    assert len(set(ledger.shown_by.values())) == 3
    assert ledger.dropped


async def test_many_people_and_devices_on_two_gateways(gateways: tuple[Api, Api], clock: FixedClock) -> None:
    first, second = gateways
    people = [f"person-{i}" for i in range(8)]
    addresses: dict[str, list[dict[str, str]]] = {}
    devices: list[Device] = []
    for i, person in enumerate(people):
        email = f"{person}@example.com"
        identified = await (first if i % 2 else second).identify(person, email=email)
        assert identified.status == 200, identified
        addresses[person] = [{"id": person}, {"email": email}]
        # Devices of one person sit on both gateways; one of them polls by email.
        devices += [
            Device(gateways[i % 2], person, f"{person}-phone", person),
            Device(gateways[(i + 1) % 2], person, f"{person}-laptop", person),
            Device(gateways[i % 2], email, f"{person}-tablet", person),
        ]
    ledger = await run_race(gateways, clock, devices, addresses, rounds=30, sends_per_round=6, seed=23)
    await check_outcome(first, ledger, devices)
    assert len(ledger.sent) == 180
    assert {ledger.sent[m] for m in ledger.shown_by} == set(people)


async def test_a_late_shown_races_another_devices_claim(gateways: tuple[Api, Api], clock: FixedClock) -> None:
    """A device reports `shown` just as its lease ran out while two others poll: one device wins."""
    first, second = gateways
    late = Device(first, "ada", "ada-phone", "ada")
    others = [Device(second, "ada", "ada-laptop", "ada"), Device(first, "ada", "ada-tablet", "ada")]
    for n in range(30):
        sent = await (first if n % 2 else second).send("ada", f"message {n}")
        assert sent.status == 201, sent
        message_id = sent.body["id"]
        polled = await late.api.poll(late.user, late.device_id)
        assert [m["id"] for m in polled.body["messages"]] == [message_id]
        clock.advance(seconds=first.workspace.lease_s + 1)

        late_report, *polls = await asyncio.gather(
            late.api.show(late.user, late.device_id, message_id),
            *(d.api.poll(d.user, d.device_id) for d in others),
        )
        receivers = [
            d for d, p in zip(others, polls, strict=True) if message_id in {m["id"] for m in p.body["messages"]}
        ]
        assert len(receivers) <= 1, "two devices claimed one message"
        assert (late_report.body["accepted"] == 1) == (receivers == []), (late_report, receivers)

        # Now every device reports shown at once: exactly one device is accepted, the winner.
        everyone = [late, *others]
        reports = await asyncio.gather(*(d.api.show(d.user, d.device_id, message_id) for d in everyone))
        accepted = {d.device_id for d, r in zip(everyone, reports, strict=True) if r.body["accepted"] == 1}
        winner = receivers[0].device_id if receivers else late.device_id
        assert accepted == {winner}, reports
        for device, report in zip(everyone, reports, strict=True):
            if device.device_id != winner:
                assert report.body["rejected"] == [
                    {"message_id": message_id, "type": "shown", "code": "not_offered_to_device"}
                ]

        read = await first.message(message_id)
        assert read.body["state"] == "shown"
        assert read.body["device_id"] == winner
        shown = [e["device_id"] for e in read.body["events"] if e["type"] == "shown"]
        assert shown == [winner]


async def test_one_device_reporting_shown_twice_at_once_is_recorded_once(
    gateways: tuple[Api, Api], clock: FixedClock
) -> None:
    """The same report through both gateways at the same instant: both accepted, one event."""
    first, second = gateways
    for n in range(20):
        sent = await first.send("ada", f"message {n}")
        polled = await second.poll("ada", "ada-phone")
        assert [m["id"] for m in polled.body["messages"]] == [sent.body["id"]]
        reports = await asyncio.gather(
            *(api.show("ada", "ada-phone", sent.body["id"]) for api in (first, second, first, second))
        )
        assert [r.body for r in reports] == [{"accepted": 1, "rejected": []}] * 4
        read = await second.message(sent.body["id"])
        assert read.body["state"] == "shown"
        assert [e["type"] for e in read.body["events"]] == ["queued", "offered", "shown"]
