"""Jobs of scenario 8: a backend sending as fast as it can, over HTTP and as its ceiling.

`backend_sends` is the product's backend in a closed loop: `concurrency` requests in flight, each
a single send (`POST /v1/messages`) or a batch (`POST /v1/messages/batch`) of `batch` messages to
random people. `send_sql` is the ceiling: the gateway's own `send_messages` statement with the
same arguments storage passes (one item, or `batch` items), straight through asyncpg with the
gateway's pool codecs and pool size: what remains is the database's share of a send.
Both report every message id they were given, so the parent can count duplicates.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import orjson

import storage
from storage.sql import queries

from .device_jobs import NETWORK_ERRORS, Peer
from .loadgen import Channel

__all__ = ["backend_sends", "send_sql"]


def _message(seq: int, user: str, campaign: str) -> dict[str, Any]:
    return {"to": {"id": user}, "content": {"title": "bench", "body": f"message {seq}"},
            "properties": {"seq": seq}, "ttl_s": 3600, "campaign": campaign}


async def backend_sends(spec: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """Closed loop until `seconds` pass after `go`: single sends, or batches of `batch` messages."""
    headers = {"Authorization": f"Bearer {spec['api_key']}"}
    users, batch, campaign = spec["users"], spec["batch"], spec["campaign"]
    rng = random.Random(spec.get("seed", 1))
    sent: list[str] = []
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    peer = Peer(spec["base_url"])
    seq = iter(range(spec["first_seq"], 1 << 62))
    channel.send("ready")
    if not await channel.command("go"):
        return {"sent": [], "latencies": [], "errors": {}, "started": 0.0, "finished": 0.0}
    started = time.time()
    until = time.monotonic() + spec["seconds"]

    async def sender() -> None:
        conn = await peer.connect(errors, channel.stopped)
        while conn is not None and time.monotonic() < until and not channel.stopped.is_set():
            if batch:
                path = "/v1/messages/batch"
                body = orjson.dumps({"messages": [_message(next(seq), rng.choice(users), campaign)
                                                  for _ in range(batch)]})
            else:
                path = "/v1/messages"
                body = orjson.dumps(_message(next(seq), rng.choice(users), campaign))
            t0 = time.perf_counter()
            try:
                status, _, raw = await conn.request("POST", path, body, headers, timeout_s=60)
            except NETWORK_ERRORS as exc:
                errors[type(exc).__name__] += 1
                conn.close()
                conn = await peer.connect(errors, channel.stopped)
                continue
            latencies.append(time.perf_counter() - t0)
            if status not in (200, 201):
                errors[str(status)] += 1
                continue
            answer = orjson.loads(raw)
            if batch:
                for result in answer["results"]:
                    if result["status"] == 201:
                        sent.append(result["message"]["id"])
                    else:
                        errors[f"item {result['status']}"] += 1
            else:
                sent.append(answer["id"])
        if conn is not None:
            conn.close()

    await asyncio.gather(*(sender() for _ in range(spec["concurrency"])))
    return {"sent": sent, "latencies": latencies, "errors": dict(errors), "started": started,
            "finished": time.time()}


async def send_sql(spec: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """The same closed loop, each request replaced by one `send_messages` statement through asyncpg."""
    statement = queries["send_messages"]
    users, batch, campaign = spec["users"], spec["batch"] or 1, spec["campaign"]
    rng = random.Random(spec.get("seed", 1))
    sent: list[str] = []
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    seq = iter(range(spec["first_seq"], 1 << 62))
    pool = await storage.create_pool(spec["database_url"], min_size=spec["pool_size"], max_size=spec["pool_size"])
    try:
        channel.send("ready")
        if not await channel.command("go"):
            return {"sent": [], "latencies": [], "errors": {}, "started": 0.0, "finished": 0.0}
        started = time.time()
        until = time.monotonic() + spec["seconds"]

        async def sender() -> None:
            while time.monotonic() < until and not channel.stopped.is_set():
                messages = [_message(next(seq), rng.choice(users), campaign) for _ in range(batch)]
                t0 = time.perf_counter()
                try:
                    rows = await pool.fetch(
                        statement, spec["workspace_id"], [m["to"]["id"] for m in messages], [None] * batch,
                        [m["content"] for m in messages], [m["properties"] for m in messages], [0] * batch,
                        [False] * batch, [campaign] * batch, [None] * batch, [m["ttl_s"] for m in messages],
                        [None] * batch, [None] * batch, [None] * batch, None,
                    )
                except Exception as exc:  # the ceiling reports what failed instead of dying
                    errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue
                latencies.append(time.perf_counter() - t0)
                sent.extend(str(r["id"]) for r in rows if r["id"] is not None)

        await asyncio.gather(*(sender() for _ in range(spec["concurrency"])))
        finished = time.time()
    finally:
        await pool.close()
    return {"sent": sent, "latencies": latencies, "errors": dict(errors), "started": started, "finished": finished}
