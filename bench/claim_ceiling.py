"""The ceiling of scenario 2: the gateway's own claim statement driven straight through asyncpg.

Same statement text (`storage.sql.queries["claim_messages"]`), same pool codecs
(`storage.create_pool`), same lease and claim limit, same racing pattern as the HTTP job
(`bench.device_jobs.claim_race`), but no HTTP, no validation, no rendering: what remains is the
database's share of a poll. One process per gateway worker, each with the gateway's pool size.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import storage
from storage.sql import queries

from .loadgen import Channel

__all__ = ["claim_race_sql"]


async def claim_race_sql(spec: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """Each person's devices claim at the same time until none gets anything new (as in `claim_race`)."""
    statement = queries["claim_messages"]
    latencies: list[float] = []
    deliveries: list[tuple[str, str]] = []
    errors: Counter[str] = Counter()
    people = list(spec["people"])
    pool = await storage.create_pool(spec["database_url"], min_size=spec["pool_size"], max_size=spec["pool_size"])
    try:
        channel.send("ready")
        if not await channel.command("go"):
            return {"latencies": [], "deliveries": [], "errors": {}, "started": 0.0, "finished": 0.0}
        started = time.time()

        async def device(user: str, index: int) -> None:
            device_id = f"d{index}"
            seen: set[str] = set()
            for _ in range(spec.get("max_polls", 50)):
                if channel.stopped.is_set():
                    return
                t0 = time.perf_counter()
                try:
                    rows = await pool.fetch(statement, spec["workspace_id"], user, device_id, None,
                                            spec["lease_s"], spec["claim_limit"], None)  # no visitor id
                except Exception as exc:  # the ceiling reports what failed instead of dying
                    errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue
                latencies.append(time.perf_counter() - t0)
                fresh = [str(r["id"]) for r in rows if r["id"] is not None and str(r["id"]) not in seen]
                if not fresh:
                    return
                seen.update(fresh)
                deliveries.extend((message_id, f"{user}/{device_id}") for message_id in fresh)

        async def worker() -> None:
            while people and not channel.stopped.is_set():
                user = people.pop()
                await asyncio.gather(*(device(user, i) for i in range(spec["devices_per_person"])))

        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
        finished = time.time()
    finally:
        await pool.close()
    return {"latencies": latencies, "deliveries": deliveries, "errors": dict(errors),
            "started": started, "finished": finished}
