"""Jobs that run inside load-generator processes and speak HTTP to the gateway as devices and a backend.

Each job is `async def job(spec, channel) -> dict` (see `bench.loadgen`); HTTP goes through the
lean client in `bench.wire`, one request at a time per connection. Latencies are taken with
`time.perf_counter` around one request; send-to-receive latencies compare the receiving
client's `time.time()` with the `sent_at` the sender put into the message's properties (one
machine, one clock). Results carry raw samples so the parent can merge processes exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import orjson

from .loadgen import Channel
from .wire import Connection, HttpError, connect

__all__ = ["Peer", "backoff_s", "claim_race", "finish", "held_polls", "sender", "short_polls"]

NETWORK_ERRORS = (HttpError, OSError, asyncio.TimeoutError)


class Peer:
    """Where a job's connections go, with how many may be connecting at once (the listen backlog is short)."""

    def __init__(self, base_url: str, *, local_addr: str | None = None, connecting: int = 100) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.local_addr = local_addr
        self._connecting = asyncio.Semaphore(connecting)

    async def connect(self, errors: Counter[str], stopped: asyncio.Event) -> Connection | None:
        """A new connection, retried with backoff until it works or the job stops (then None)."""
        delay = 0.2
        while not stopped.is_set():
            try:
                async with self._connecting:
                    return await asyncio.wait_for(connect(self.host, self.port, local_addr=self.local_addr), 10)
            except (TimeoutError, OSError) as exc:
                errors[f"connect {type(exc).__name__}"] += 1
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
        return None


async def short_polls(spec: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """Closed loop: `connections` requests in flight, each poll as the next device of the population."""
    bodies = [orjson.dumps(b) for b in spec["bodies"]]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    counter = itertools.count()
    peer = Peer(spec["url"])
    path = urlsplit(spec["url"]).path
    connections = [await peer.connect(errors, channel.stopped) for _ in range(spec["connections"])]
    channel.send("ready")
    if not await channel.command("go"):
        return {"latencies": [], "errors": {}, "seconds": 0.0}
    start = time.perf_counter()
    measure_from = start + spec["warmup_s"]
    end = measure_from + spec["seconds"]

    async def loop(conn: Connection | None) -> None:
        while not channel.stopped.is_set() and time.perf_counter() < end:
            if conn is None or conn.closed:
                conn = await peer.connect(errors, channel.stopped)
                if conn is None:
                    return
            body = bodies[next(counter) % len(bodies)]
            t0 = time.perf_counter()
            try:
                status, _, _ = await conn.request("POST", path, body, timeout_s=30)
            except NETWORK_ERRORS as exc:
                errors[type(exc).__name__] += 1
                conn = None
                continue
            if status != 200:
                errors[str(status)] += 1
            elif t0 >= measure_from:
                latencies.append(time.perf_counter() - t0)
        if conn is not None:
            conn.close()

    await asyncio.gather(*(loop(c) for c in connections))
    return {"latencies": latencies, "errors": dict(errors), "seconds": spec["seconds"]}


async def claim_race(spec: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """People with pending messages; each person's devices poll at the same time until none gets anything new.

    A device stops after a poll that brings no message it had not seen (the gateway re-offers
    its leased messages on every poll); `concurrency` people race at once, each device on its
    own connection.
    """
    latencies: list[float] = []
    deliveries: list[tuple[str, str]] = []
    errors: Counter[str] = Counter()
    people = list(spec["people"])
    peer = Peer(spec["base_url"])
    devices = spec["devices_per_person"]
    pools = [[await peer.connect(errors, channel.stopped) for _ in range(devices)]
             for _ in range(spec["concurrency"])]
    channel.send("ready")
    if not await channel.command("go"):
        return {"latencies": [], "deliveries": [], "errors": {}, "started": 0.0, "finished": 0.0}
    started = time.time()

    async def device(connections: list[Connection | None], user: str, index: int) -> None:
        device_id = f"d{index}"
        body = orjson.dumps({"site_id": spec["site_id"], "user": user, "device_id": device_id})
        seen: set[str] = set()
        for _ in range(spec.get("max_polls", 50)):
            conn = connections[index]
            if conn is None or conn.closed:
                conn = connections[index] = await peer.connect(errors, channel.stopped)
                if conn is None:
                    return
            t0 = time.perf_counter()
            try:
                status, _, raw = await conn.request("POST", "/v1/poll", body, timeout_s=30)
            except NETWORK_ERRORS as exc:
                errors[type(exc).__name__] += 1
                connections[index] = None
                continue
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors[str(status)] += 1
                await asyncio.sleep(0.05)
                continue
            fresh = [m["id"] for m in orjson.loads(raw)["messages"] if m["id"] not in seen]
            if not fresh:
                return
            seen.update(fresh)
            deliveries.extend((message_id, f"{user}/{device_id}") for message_id in fresh)

    async def worker(connections: list[Connection | None]) -> None:
        while people and not channel.stopped.is_set():
            user = people.pop()
            await asyncio.gather(*(device(connections, user, i) for i in range(devices)))

    await asyncio.gather(*(worker(pool) for pool in pools))
    finished = time.time()
    for conn in itertools.chain.from_iterable(pools):
        if conn is not None:
            conn.close()
    return {"latencies": latencies, "deliveries": deliveries, "errors": dict(errors),
            "started": started, "finished": finished}


def backoff_s(failures: int, retry_after: str | None = None) -> float:
    """The web SDK's wait after a failed poll: 1 s doubling to 60 s, jittered, never below Retry-After.

    A flat short retry made every overloaded moment a storm: thousands of devices came back within
    a second and were refused again (bench s7)."""
    cap = min(60.0, 2.0 ** min(failures - 1, 6))
    try:
        floor = float(retry_after) if retry_after else 0.0
    except ValueError:
        floor = 0.0
    return max(cap / 2 + random.random() * cap / 2, floor * (1 + random.random() * 0.1))


async def held_polls(spec: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """One long poll per device (`wait`), re-polled when answered; each new message is reported `shown`
    on the next poll (`events`), as the web SDK acknowledges (docs/api.md, "Acknowledge on the next poll").

    Devices are opened at `ramp_per_s`, at most 100 connecting at once, so the listen backlog
    does not overflow; `ready` is sent once every device has been started. Runs until told to
    stop (or the deadline); answers `progress` with how many messages arrived.
    """
    site_id, wait_s = spec["site_id"], spec["wait_s"]
    received: list[tuple[str, int, float]] = []  # message id, device index, seconds since sent_at
    sent_at_of: list[float] = []  # each received message's sent_at, in the order of `received`
    answers: Counter[int] = Counter()  # polls answered, by wall-clock second (the timeline)
    errors: Counter[str] = Counter()
    polls = 0
    peer = Peer(spec["base_url"], local_addr=spec.get("local_addr"))
    channel.answer("progress", lambda: channel.send("progress", received=len(received), polls=polls,
                                                    errors=sum(errors.values())))

    async def device(index: int, user: str, device_id: str) -> None:
        nonlocal polls
        poll = {"site_id": site_id, "user": user, "device_id": device_id, "wait": wait_s}
        body = orjson.dumps(poll)
        seen: set[str] = set()
        conn: Connection | None = None
        failures = 0
        try:
            while not channel.stopped.is_set():
                if conn is None or conn.closed:
                    conn = await peer.connect(errors, channel.stopped)
                    if conn is None:
                        return
                try:
                    status, headers, raw = await conn.request("POST", "/v1/poll", body, timeout_s=wait_s + 30)
                except NETWORK_ERRORS as exc:
                    errors[type(exc).__name__] += 1
                    conn = None
                    failures += 1
                    await asyncio.sleep(backoff_s(failures))
                    continue
                now = time.time()
                polls += 1
                answers[int(now)] += 1
                if status != 200:
                    errors[str(status)] += 1  # the reports it carried go again with the next poll
                    failures += 1
                    await asyncio.sleep(backoff_s(failures, headers.get("retry-after")))
                    continue
                failures = 0
                answer = orjson.loads(raw)
                if answer.get("events", {}).get("rejected"):
                    errors["events rejected"] += 1
                fresh = [m for m in answer["messages"] if m["id"] not in seen]
                for message in fresh:
                    seen.add(message["id"])
                    sent_at = message["properties"].get("sent_at")
                    received.append((message["id"], index, now - sent_at if sent_at is not None else -1.0))
                    sent_at_of.append(sent_at if sent_at is not None else now)
                # Shown: reported by the next poll, one request per delivery instead of two.
                events = [{"message_id": m["id"], "type": "shown"} for m in fresh]
                body = orjson.dumps({**poll, "events": events} if events else poll)
        finally:
            if conn is not None:
                conn.close()

    loop = asyncio.get_running_loop()
    tasks = []
    t0 = loop.time()
    for n, (index, user, device_id) in enumerate(spec["devices"]):
        if channel.stopped.is_set():
            break
        delay = t0 + n / spec["ramp_per_s"] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(device(index, user, device_id)))
    channel.send("ready", devices=len(tasks))
    await channel.stopped.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"received": received, "sent_at": sent_at_of, "answers": dict(answers), "errors": dict(errors),
            "polls": polls}


async def sender(spec: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """The product's backend: `rate` sends per second to random people for `seconds`, open loop.

    Each message carries `properties.sent_at` (time.time() when it is due) so that the receiving
    device measures send-to-receive, client-side queueing included. At most `in_flight` requests
    are open at once, each on its own connection from a small pool.
    """
    headers = {"Authorization": f"Bearer {spec['api_key']}"}
    users = spec["users"]
    rng = random.Random(spec.get("seed", 1))
    total = int(spec["rate"] * spec["seconds"])
    sent: list[tuple[str, str]] = []  # message id, user
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    made: Counter[int] = Counter()  # sends due, by wall-clock second of their sent_at (the timeline)
    accepted: Counter[int] = Counter()  # of those, answered 201
    answered_in: dict[int, list[float]] = {}  # request latencies of the sends due in each second
    peer = Peer(spec["base_url"])
    idle: list[Connection] = []
    gate = asyncio.Semaphore(spec.get("in_flight", 256))
    late = 0

    async def send(seq: int, user: str) -> None:
        sent_at = time.time()
        made[int(sent_at)] += 1
        body = orjson.dumps({"to": {"id": user}, "content": {"title": "bench", "body": f"message {seq}"},
                             "properties": {"sent_at": sent_at, "seq": seq}, "ttl_s": 3600})
        async with gate:
            conn = idle.pop() if idle else await peer.connect(errors, channel.stopped)
            if conn is None:
                return
            t0 = time.perf_counter()
            try:
                status, _, raw = await conn.request("POST", "/v1/messages", body, headers, timeout_s=30)
            except NETWORK_ERRORS as exc:
                errors[type(exc).__name__] += 1
                return
            latencies.append(time.perf_counter() - t0)
            answered_in.setdefault(int(sent_at), []).append(time.time() - sent_at)
            idle.append(conn)
            if status != 201:
                errors[str(status)] += 1
                return
            sent.append((orjson.loads(raw)["id"], user))
            accepted[int(sent_at)] += 1

    loop = asyncio.get_running_loop()
    # Only the sends still open: a finished send's task (and its coroutine) is dropped at once.
    # Keeping all 60,000 made the sender's own full collections walk every send of the run, pausing
    # its loop 0.2-1 s in the last half of s3's 60 s (bench/RESULTS.md, "the stalled seconds").
    tasks: set[asyncio.Task[None]] = set()
    t0 = loop.time()
    started = time.time()
    for seq in range(total):
        if channel.stopped.is_set():
            break
        delay = t0 + seq / spec["rate"] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.1:
            late += 1
        task = asyncio.create_task(send(seq, rng.choice(users)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    unfinished = await finish(list(tasks), spec.get("finish_s", 30.0))
    finished = time.time()
    for conn in idle:
        conn.close()
    return {"sent": sent, "latencies": latencies, "errors": dict(errors), "late": late, "unfinished": unfinished,
            "started": started, "finished": finished, "made": dict(made), "accepted": dict(accepted),
            "answered_in": answered_in}


async def finish(tasks: list[asyncio.Task[None]], timeout_s: float) -> int:
    """Wait for requests still open, at most `timeout_s`; cancel the rest and say how many there were."""
    if not tasks:
        return 0
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)
