"""Sends racing polls that acknowledge their offers (decision 0045), across two gateway processes.

The set-up of tests/acceptance/test_memory_race.py: two apps with their own pools and listeners on
one database and one pinned clock, each hearing its notices and markers late. Each person has two
devices; each poll goes to either app (mostly the device's own, sometimes the other, as a load
balancer may send it), and carries `shown` for what the device got on its previous poll, as the
SDK does, after a moment on screen in which a send to the person sometimes lands. Most polls are
held, so that offers come from woken claims and acknowledging polls park from memory. Checked on
every answer, never timings:

- exactly once: no message reaches two devices, or one device twice;
- at once: a poll that starts after a send to its person returned gets that message, unless the
  other device already did or still holds it under its lease;
- every report of what a device was handed is accepted: a note one app kept never makes another
  device's poll, or the other app, answer for it;
- nothing lost: at the end every message sent was received, and the shortcut was taken.
"""

from __future__ import annotations

import asyncio
import random

from tests.acceptance.test_memory_race import MAX_LAG_S, Ledger, Person, gateways
from tests.helpers import Api

__all__ = ["gateways"]

PEOPLE = 6
MESSAGES = 30
# Between two sends (through either app, to anyone): spread over the acknowledgements.
SEND_GAP_S = 0.02
HELD_SHARE = 0.7
# Short, so that a poll wrongly parked on memory is seldom rescued by the next send's wake-up.
HELD_WAIT_S = 0.5
OWN_APP_SHARE = 0.8
MAX_POLLS = 400
# How long a device shows what it was handed before its next poll acknowledges it.
THINK_S = 0.03
assert 2 * THINK_S > MAX_LAG_S
# How often a send to the person lands in that moment, before the acknowledging poll starts, and
# how many such sends in all (they go on after the other sends ended, with nothing else to wake a poll).
GAP_SEND_SHARE = 0.7
GAP_SENDS = 60


async def poll_person(
    person: Person, devices: list[tuple[str, Api, Api]], ledger: Ledger, rng: random.Random, gap_sends: list[int],
) -> None:
    unacked: dict[str, list[str]] = {device_id: [] for device_id, _, _ in devices}
    for n in range(MAX_POLLS):
        # Read before the poll starts: every one of these sends had committed by then.
        expected = {m for m in person.sent if m not in ledger.received}
        if not ledger.sending and not expected and not any(unacked.values()) and n >= len(devices):
            return
        # Mostly the device that was just handed something acknowledges it next, after a moment
        # on screen in which a send may land (and be heard) before the acknowledgement.
        waiting = [d for d in devices if unacked[d[0]]]
        device_id, own, other = waiting[0] if waiting and rng.random() < 0.8 else rng.choice(devices)
        if unacked[device_id]:
            await asyncio.sleep(rng.uniform(0, THINK_S))
            if gap_sends[0] > 0 and rng.random() < GAP_SEND_SHARE:  # a send lands before the `shown`
                gap_sends[0] -= 1
                reply = await rng.choice([own, other]).send(person.to, "Gap")
                assert reply.status == 201, reply
                person.sent.append(str(reply.body["id"]))
                # Mostly long enough for its notice to be heard (MAX_LAG_S) before the `shown`, not always.
                await asyncio.sleep(rng.uniform(0, 2 * THINK_S))
        api = own if rng.random() < OWN_APP_SHARE else other
        held = rng.random() < HELD_SHARE
        events = [{"message_id": m, "type": "shown"} for m in unacked[device_id]]
        fields: dict[str, object] = {"events": events} if events else {}
        if held:
            fields["wait"] = HELD_WAIT_S
        reply = await api.poll(person.user, device_id, **fields)
        assert reply.status == 200, reply
        if events and reply.body["events"] != {"accepted": len(events), "rejected": []}:
            ledger.violations.append(f"{device_id}'s reports of {unacked[device_id]} refused: {reply.body['events']}")
        ids = [m["id"] for m in reply.body["messages"]]
        for message_id in ids:
            if message_id in ledger.received:
                ledger.violations.append(f"{message_id} reached {device_id} after {ledger.received[message_id]}")
            ledger.received[message_id] = device_id
        unacked[device_id] = ids
        # The other device's offers, not yet shown, are still under its lease: not expected here.
        late = expected - set(ids) - {m for d, held_ids in unacked.items() if d != device_id for m in held_ids}
        if late:
            kind = "held" if held else "short"
            ledger.violations.append(f"a {kind} poll of {person.user} on {device_id} missed {sorted(late)}")
    ledger.violations.append(f"{person.user} never caught up: {[m for m in person.sent if m not in ledger.received]}")


async def send_spread(people: list[Person], gateways: tuple[Api, Api], ledger: Ledger, rng: random.Random) -> None:
    try:
        for _ in range(MESSAGES):
            person = rng.choice(people)
            reply = await rng.choice(gateways).send(person.to, "Race")
            assert reply.status == 201, reply
            person.sent.append(str(reply.body["id"]))
            await asyncio.sleep(rng.uniform(0, SEND_GAP_S))
    finally:
        ledger.sending = False


async def test_sends_racing_acknowledging_polls_on_two_processes_arrive_once_and_at_once(
    gateways: tuple[Api, Api],
) -> None:
    first, second = gateways
    rng = random.Random(2045)
    people = [Person(f"p{i}", {"id": f"p{i}"}) for i in range(PEOPLE)]
    ledger = Ledger()
    gap_sends = [GAP_SENDS]
    pollers = [
        poll_person(p, [(f"d{i}-a", first, second), (f"d{i}-b", second, first)], ledger, random.Random(i), gap_sends)
        for i, p in enumerate(people)
    ]
    await asyncio.gather(send_spread(people, gateways, ledger, rng), *pollers)

    assert ledger.violations == []
    sent = [m for p in people for m in p.sent]
    assert sorted(ledger.received) == sorted(sent)
    assert len(sent) > MESSAGES
    acked = [await api.metric("mailslot_poll_memory_acks_total", result="acked") for api in gateways]
    assert sum(acked) > 0, acked
