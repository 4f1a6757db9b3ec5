"""The load a fault case runs against: devices holding polls, and a backend sending with retries.

Devices behave as the web SDK does: hold a poll, show an offer only with at least
`SHOW_MIN_LEASE_S` of lease left, report `shown` at once (retrying until its lease is gone),
and back off on 503 (`Retry-After`) and connection errors. The backend sends each message with
an `Idempotency-Key` and retries it, with the same key and body, until it is acknowledged.
Everything a client sees is recorded with the test process's monotonic clock, so the checks
afterwards need no timing of their own.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.core.identity import user_hash
from storage import WorkspaceCredentials

SHOW_MIN_LEASE_S = 3  # the web SDK's threshold (decision 0016)
HOLD_S = 10  # each held poll's `wait`
REQUEST_TIMEOUT_S = HOLD_S + 20
BACKOFF_S = 0.5
SEND_GIVE_UP_S = 120.0  # a send not acknowledged by then counts as failed


@dataclass
class Offer:
    device: str
    at: float  # when the answer arrived
    lease_s: int | None


@dataclass
class Record:
    """What every client saw; the checks read only this and the database."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> message id
    failed_sends: list[str] = field(default_factory=list)
    send_latency_s: list[float] = field(default_factory=list)
    acknowledged_at: list[float] = field(default_factory=list)
    offers: dict[str, list[Offer]] = field(default_factory=lambda: defaultdict(list))
    shown_accepted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    shown_rejected: Counter[str] = field(default_factory=Counter)
    vanished: dict[str, str] = field(default_factory=dict)  # device -> the message it took with it
    errors: list[tuple[float, str]] = field(default_factory=list)  # (when, kind)
    unexpected: list[str] = field(default_factory=list)  # any 5xx but 503, any 4xx: never allowed
    requests: int = 0

    def error(self, kind: str) -> None:
        self.errors.append((time.monotonic(), kind))

    def outage_s(self) -> float:
        """The longest time the backend went without an acknowledged send (it sends every 25 ms or so)."""
        times = sorted(self.acknowledged_at)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def summary(self) -> str:
        return (f"{len(self.acknowledged)} sends acknowledged, {len(self.shown_accepted)} shown, "
                f"{self.requests} requests, errors {self.error_counts()}, unexpected {self.unexpected[:3]}")

    def error_counts(self) -> dict[str, int]:
        return dict(Counter(kind for _, kind in self.errors))


class Load:
    """`devices_each` devices for each of `people` people, and `senders` concurrent backend senders against `base`."""

    def __init__(self, base: str, credentials: WorkspaceCredentials, *, people: int = 100, devices_each: int = 2,
                 senders: int = 4, send_interval_s: float = 0.1, vanishing: int = 0) -> None:
        self.base = base
        self.credentials = credentials
        self.people = [f"person-{i}" for i in range(people)]
        self.devices_each = devices_each
        self.senders = senders
        self.send_interval_s = send_interval_s
        self.vanishing = vanishing  # this many devices claim one offer and are never heard of again
        self.record = Record()
        self.sending = True
        self.polling = True
        self._keys = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        )
        devices = [(person, f"{person}:d{d}") for person in self.people for d in range(self.devices_each)]
        for index, (person, device) in enumerate(devices):
            # Every other device of the first people vanishes: each has a sibling that stays.
            vanish = index % self.devices_each == 0 and index // self.devices_each < self.vanishing
            self._tasks.append(asyncio.create_task(self._device(person, device, vanish), name=device))
        for n in range(self.senders):
            self._tasks.append(asyncio.create_task(self._sender(), name=f"sender {n}"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.sending = self.polling = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        assert self._session is not None
        await self._session.close()

    async def stop_sending(self) -> None:
        """Stop starting new sends and wait for every started one to be acknowledged or given up."""
        self.sending = False
        senders = [t for t in self._tasks if t.get_name().startswith("sender")]
        await asyncio.wait_for(asyncio.gather(*senders), SEND_GIVE_UP_S + REQUEST_TIMEOUT_S)

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
                    ) -> tuple[int, Any, dict[str, str]] | None:
        """One request; None (recorded) on a connection error or timeout."""
        assert self._session is not None
        self.record.requests += 1
        try:
            async with self._session.post(self.base + path, json=body, headers=headers) as response:
                data = await response.json(content_type=None)
                return response.status, data, dict(response.headers)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.record.error(f"connection ({type(exc).__name__})" if not isinstance(exc, TimeoutError)
                              else "timeout")
            return None

    def _failed(self, path: str, status: int, body: Any, headers: dict[str, str]) -> float:
        """Record a non-success answer; the seconds to back off."""
        if status == 503:
            self.record.error("503")
            assert headers.get("Retry-After", "").isdigit(), (path, headers)
            return min(float(headers["Retry-After"]), 2.0)
        self.record.unexpected.append(f"{path} {status} {body}")
        return BACKOFF_S

    async def _sender(self) -> None:
        while self.sending:
            key = f"fault-{next(self._keys)}"
            person = self.people[int(key.rsplit("-", 1)[1]) % len(self.people)]
            await self._send(key, person)
            await asyncio.sleep(self.send_interval_s)

    async def _send(self, key: str, person: str) -> None:
        body = {"to": {"id": person}, "content": {"title": key, "body": "fault suite"}}
        headers = {"Authorization": f"Bearer {self.credentials.api_key}", "Idempotency-Key": key}
        started = time.monotonic()
        while time.monotonic() - started < SEND_GIVE_UP_S:
            answer = await self._post("/v1/messages", body, headers)
            if answer is None:
                await asyncio.sleep(BACKOFF_S)
                continue
            status, data, response_headers = answer
            if status in (200, 201):
                self.record.acknowledged[key] = data["id"]
                self.record.acknowledged_at.append(time.monotonic())
                self.record.send_latency_s.append(self.record.acknowledged_at[-1] - started)
                return
            await asyncio.sleep(self._failed("/v1/messages", status, data, response_headers))
        self.record.failed_sends.append(key)

    async def _device(self, person: str, device: str, vanish: bool) -> None:
        identity = {"site_id": self.credentials.workspace.site_id, "user": person, "device_id": device,
                    "user_hash": user_hash(self.credentials.workspace.identity_secret, person)}
        while self.polling:
            answer = await self._post("/v1/poll", {**identity, "wait": HOLD_S})
            if answer is None:
                await asyncio.sleep(BACKOFF_S)
                continue
            status, data, headers = answer
            if status != 200:
                await asyncio.sleep(self._failed("/v1/poll", status, data, headers))
                continue
            arrived = time.monotonic()
            for message in data["messages"]:
                lease = data["lease_s"].get(message["id"])
                self.record.offers[message["id"]].append(Offer(device, arrived, lease))
                if lease is None or lease < SHOW_MIN_LEASE_S:
                    continue  # not shown: nearly gone (or a persistent one already shown here)
                if vanish:
                    self.record.vanished[device] = message["id"]
                    return  # claimed, rendered, closed before reporting: the lease must run out
                await self._report_shown(identity, message["id"], device, arrived + lease)

    async def _report_shown(self, identity: dict[str, str], message_id: str, device: str, until: float) -> None:
        report = {**identity, "events": [{"message_id": message_id, "type": "shown"}]}
        while time.monotonic() < until:
            answer = await self._post("/v1/events", report)
            if answer is None:
                await asyncio.sleep(BACKOFF_S)
                continue
            status, data, headers = answer
            if status == 200:
                if data["accepted"] == 1:
                    self.record.shown_accepted[message_id].add(device)
                else:
                    self.record.shown_rejected[data["rejected"][0]["code"]] += 1
                return
            await asyncio.sleep(self._failed("/v1/events", status, data, headers))


def check_invariants(record: Record) -> list[str]:
    """Every violation of the contract the record shows; empty when there is none."""
    problems = []
    if record.unexpected:
        problems.append(f"{len(record.unexpected)} answers other than success or 503: {record.unexpected[:5]}")
    if record.failed_sends:
        problems.append(f"{len(record.failed_sends)} sends never acknowledged: {record.failed_sends[:5]}")
    for key, message_id in record.acknowledged.items():
        devices = record.shown_accepted.get(message_id, set())
        if len(devices) != 1:
            problems.append(f"{key} ({message_id}) accepted as shown on {sorted(devices) or 'no device'}")
    for message_id, offers in record.offers.items():
        # Offered to a second device while the first one's lease (as told to it) still ran.
        for first, later in itertools.combinations(sorted(offers, key=lambda o: o.at), 2):
            if first.device != later.device and first.lease_s is not None and later.at < first.at + first.lease_s:
                problems.append(
                    f"{message_id} offered to {later.device} {first.at + first.lease_s - later.at:.2f} s before "
                    f"{first.device}'s lease ran out"
                )
    return problems
