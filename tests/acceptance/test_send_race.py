"""Coalesced sends racing across two gateway processes (decision 0030).

Each process coalesces its concurrent single sends into one statement per workspace; two such
statements, one per process, then race each other with the same idempotency keys and the same
people. Invariants, never timings: a key queues exactly one message, and every send with that key
gets it back (201 once, 200 replays), or 422 when its body differs; a send without a key always
queues its own message; every message queued is delivered to exactly one device.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from gateway.core.clock import FixedClock
from tests.acceptance.test_race import gateways
from tests.helpers import Api, Reply

__all__ = ["gateways"]

ROUNDS = 4
PEOPLE = ["ada", "bob", "cyd"]


async def test_keys_and_people_shared_by_coalesced_sends_of_two_processes(
    gateways: tuple[Api, Api], clock: FixedClock
) -> None:
    rng = random.Random(7)
    replies: list[tuple[str | None, str, Reply]] = []  # key, title, answer

    async def send(api: Api, person: str, key: str | None, title: str) -> None:
        headers = {"Idempotency-Key": key} if key else None
        replies.append((key, title, await api.send(person, title, headers=headers)))

    for round_ in range(ROUNDS):
        sends = []
        for i in range(40):
            api = gateways[i % 2]
            person = rng.choice(PEOPLE)
            if i % 4 == 3:
                sends.append(send(api, person, None, f"unkeyed {round_}.{i}"))
            else:
                key = f"k{round_}.{i % 5}"
                # A key is always sent to the same person; one in five sends changes the body.
                title = f"body of {key}" if rng.random() < 0.8 else f"another body {round_}.{i}"
                sends.append(send(api, PEOPLE[i % 5 % 3], key, title))
        await asyncio.gather(*sends)

    by_key: dict[str, list[tuple[str, Reply]]] = defaultdict(list)
    queued: set[str] = set()
    for key, title, reply in replies:
        assert reply.status in (200, 201, 422), reply
        if reply.status == 201:
            assert reply.body["id"] not in queued
            queued.add(reply.body["id"])
        if key is None:
            assert reply.status == 201, reply
        else:
            by_key[key].append((title, reply))
    for key, answers in by_key.items():
        created = [(title, r) for title, r in answers if r.status == 201]
        assert len(created) == 1, (key, answers)
        first_title, first = created[0]
        for title, reply in answers:
            if reply.status == 200:
                assert title == first_title and reply.body["id"] == first.body["id"], (key, answers)
            elif reply.status == 422:
                assert title != first_title and reply.error_code == "idempotency_key_reused", (key, answers)

    delivered: dict[str, int] = defaultdict(int)
    for person in PEOPLE:
        for device, api in (("phone", gateways[0]), ("laptop", gateways[1])):
            while True:
                answer = await api.poll(person, device)
                fresh = [m for m in answer.message_ids if m not in delivered]
                if not fresh:
                    break
                for message_id in fresh:
                    delivered[message_id] += 1
                    assert (await api.show(person, device, message_id)).status == 200
    assert set(delivered) == queued
    assert all(count == 1 for count in delivered.values())
