"""Jobs for scenario 5 that run in load-generator processes: nchan long-poll subscribers and the publisher.

They mirror `bench.device_jobs.held_polls` and `sender`: one held long poll per subscriber on
its own channel, re-subscribed after each answer with nchan's message id (`If-Modified-Since`,
`If-None-Match`), and one publish per channel carrying `sent_at` in its body.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import orjson

from .device_jobs import NETWORK_ERRORS, Peer, finish
from .loadgen import Channel
from .wire import Connection

__all__ = ["publisher", "subscribers"]


async def subscribers(spec: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """Hold one long poll per channel in `spec["channels"]`; record each message with its latency."""
    received: list[tuple[str, str, float]] = []  # channel, nchan message id, seconds since sent_at
    errors: Counter[str] = Counter()
    polls = 0
    peer = Peer(spec["base_url"], local_addr=spec.get("local_addr"))
    channel.answer("progress", lambda: channel.send("progress", received=len(received), polls=polls,
                                                    errors=sum(errors.values())))

    async def subscribe(name: str) -> None:
        nonlocal polls
        headers: dict[str, str] = {}
        conn: Connection | None = None
        try:
            while not channel.stopped.is_set():
                if conn is None or conn.closed:
                    conn = await peer.connect(errors, channel.stopped)
                    if conn is None:
                        return
                try:
                    status, answer_headers, raw = await conn.request("GET", f"/sub/{name}", headers=headers,
                                                                     timeout_s=spec["wait_s"] + 30)
                except NETWORK_ERRORS as exc:
                    errors[type(exc).__name__] += 1
                    conn = None
                    await asyncio.sleep(0.5 + random.random())
                    continue
                now = time.time()
                polls += 1
                if status in (304, 408):  # the subscriber timeout: ask again from the same place
                    continue
                if status != 200:
                    errors[str(status)] += 1
                    await asyncio.sleep(0.5 + random.random())
                    continue
                sent_at = orjson.loads(raw).get("sent_at")
                last_modified, etag = answer_headers.get("last-modified"), answer_headers.get("etag")
                received.append((name, f"{last_modified}:{etag}", now - sent_at if sent_at is not None else -1.0))
                if last_modified is not None:
                    headers = {"If-Modified-Since": last_modified, "If-None-Match": etag or "0"}
        finally:
            if conn is not None:
                conn.close()

    loop = asyncio.get_running_loop()
    tasks = []
    t0 = loop.time()
    for n, name in enumerate(spec["channels"]):
        if channel.stopped.is_set():
            break
        delay = t0 + n / spec["ramp_per_s"] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(subscribe(name)))
    channel.send("ready", subscribers=len(tasks))
    await channel.stopped.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"received": received, "errors": dict(errors), "polls": polls}


async def publisher(spec: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """One publish per channel at `rate` per second, open loop, at most `in_flight` at once."""
    published: list[str] = []
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    peer = Peer(spec["base_url"])
    idle: list[Connection] = []
    gate = asyncio.Semaphore(spec.get("in_flight", 256))
    late = 0

    async def publish(name: str) -> None:
        body = orjson.dumps({"sent_at": time.time(), "channel": name})
        async with gate:
            conn = idle.pop() if idle else await peer.connect(errors, channel.stopped)
            if conn is None:
                return
            t0 = time.perf_counter()
            try:
                status, _, _ = await conn.request("POST", f"/pub/{name}", body, timeout_s=30)
            except NETWORK_ERRORS as exc:
                errors[type(exc).__name__] += 1
                return
            latencies.append(time.perf_counter() - t0)
            idle.append(conn)
            if status not in (201, 202):
                errors[str(status)] += 1
                return
            published.append(name)

    loop = asyncio.get_running_loop()
    tasks = []
    t0 = loop.time()
    started = time.time()
    for n, name in enumerate(spec["channels"]):
        if channel.stopped.is_set():
            break
        delay = t0 + n / spec["rate"] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.1:
            late += 1
        tasks.append(asyncio.create_task(publish(name)))
    unfinished = await finish(tasks, spec.get("finish_s", 30.0))
    finished = time.time()
    for conn in idle:
        conn.close()
    return {"published": published, "latencies": latencies, "errors": dict(errors), "late": late,
            "unfinished": unfinished, "started": started, "finished": finished}
