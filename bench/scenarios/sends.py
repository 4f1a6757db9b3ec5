"""Scenario 8: a backend sending as fast as it can, one message per request and in batches.

The issue calls this s6; 6 was already retention. Each mode runs the gateway over HTTP
(`concurrency` requests in flight over the load-generator processes) and then its ceiling: the
same `send_messages` statement with the same arguments straight through asyncpg, one process
per gateway worker with the gateway's pool size, for as long. The figure is messages queued per
second, gateway over ceiling. Every message id answered is counted: one answered twice is a
duplicate, one answered but not in the database is lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from ..harness import POOL_MAX, Gateway
from ..loadgen import Fleet
from ..seed import import_people
from ..stats import summarize
from .base import Context, Scenario

__all__ = ["SendThroughput"]

_MODES = ("single", "batch")


class SendThroughput(Scenario):
    key = "s8"
    title = "Send throughput"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.gateway: Gateway | None = None

    def setup(self) -> None:
        s = self.settings
        self.credentials = self.context.workspace("bench-s8")
        # Sends go to known people, as a product's mostly do (an unknown one is created on the way).
        self.users = [f"s8-person-{i}" for i in range(s.s8_people)]
        import_people(self.context.database_url, self.credentials.workspace_id, self.users)

    def _specs(self, side: str, mode: str, first_seq: int) -> list[dict[str, Any]]:
        s = self.settings
        processes = s.loadgen_processes if side == "gateway" else s.workers
        batch = s.s8_batch if mode == "batch" else 0
        common = {"users": self.users, "batch": batch, "seconds": s.s8_seconds, "deadline": self.deadline,
                  "campaign": f"bench-s8-{side}-{mode}", "concurrency": max(1, s.s8_concurrency // processes)}
        if side == "gateway":
            assert self.gateway is not None
            return [{"kind": "backend_sends", "base_url": self.gateway.base_url, "api_key": self.credentials.api_key,
                     "seed": k, "first_seq": first_seq + k * 10**9, **common} for k in range(processes)]
        return [{"kind": "send_sql", "database_url": self.context.database_url,
                 "workspace_id": self.credentials.workspace_id, "pool_size": POOL_MAX,
                 "seed": k, "first_seq": first_seq + k * 10**9, **common} for k in range(processes)]

    def _measure(self, side: str, mode: str, first_seq: int) -> dict[str, Any]:
        with Fleet(self._specs(side, mode, first_seq), name=f"s8-{side}-{mode}") as fleet:
            fleet.wait_event("ready", 60)
            fleet.send("go")
            results = fleet.results()
        ids = [message_id for r in results for message_id in r["sent"]]
        latencies = [x for r in results for x in r["latencies"]]
        errors: dict[str, int] = {}
        for r in results:
            for code, n in r["errors"].items():
                errors[code] = errors.get(code, 0) + n
        seconds = max(r["finished"] for r in results) - min(r["started"] for r in results)
        stored = asyncio.run(_stored(self.context.database_url, self.credentials.workspace_id, ids))
        rate = len(ids) / seconds if seconds > 0 else 0.0
        self.samples[f"{side}_{mode}"] = latencies
        figures = {"sends_per_s": round(rate, 1), "messages": len(ids), "requests": len(latencies),
                   "seconds": round(seconds, 3), "latency": summarize(latencies), "errors": errors,
                   "duplicates": len(ids) - len(set(ids)), "lost": len(set(ids)) - stored}
        self.say(f"{side} {mode}: {rate:,.0f} messages/s in {seconds:.1f}s ({len(latencies):,} requests), "
                 f"duplicates {figures['duplicates']}, lost {figures['lost']}, errors {errors or 0}")
        return figures

    def run(self) -> dict[str, Any]:
        s = self.settings
        self.arm()
        result: dict[str, Any] = {"people": s.s8_people, "concurrency": s.s8_concurrency, "batch_size": s.s8_batch}
        self.gateway = self.context.gateway(s.workers)
        self.gateway.start()
        gateway = {mode: self._measure("gateway", mode, (i + 1) * 10**12) for i, mode in enumerate(_MODES)}
        self.gateway.stop()
        self.gateway = None
        ceiling = {mode: self._measure("ceiling", mode, (i + 3) * 10**12) for i, mode in enumerate(_MODES)}
        for mode in _MODES:
            ours, theirs = gateway[mode]["sends_per_s"], ceiling[mode]["sends_per_s"]
            result[mode] = {"gateway": gateway[mode], "ceiling": ceiling[mode],
                            "ratio": round(ours / theirs, 3) if theirs else None}
        result["ratio"] = result["single"]["ratio"]
        result["duplicates"] = sum(side[mode]["duplicates"] for side in (gateway, ceiling) for mode in _MODES)
        result["lost"] = sum(side[mode]["lost"] for side in (gateway, ceiling) for mode in _MODES)
        return result

    def teardown(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()


async def _stored(database_url: str, workspace_id: int, ids: list[str]) -> int:
    """How many of these message ids the database holds (the orchestrator's one look behind the API)."""
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE workspace_id = $1 AND id = ANY ($2::uuid[])", workspace_id, ids
        )
    finally:
        await conn.close()
    return count
