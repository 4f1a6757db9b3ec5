"""Scenario 2: the claim path, three devices of each person racing for that person's pending messages.

Two equal sets of people get the same pending messages through `POST /v1/broadcasts` (one
broadcast per message and chunk of ids). The gateway side races devices over HTTP; the ceiling
side runs the same claim statement with the same racing pattern straight through asyncpg, one
process per gateway worker with the gateway's pool size. Both sides count every delivery, so a
message that reached two devices (duplicate) or none (lost) shows up.
"""

from __future__ import annotations

from typing import Any

from ..fetch import fetch_json
from ..harness import CLAIM_LIMIT, POOL_MAX, Gateway
from ..loadgen import Fleet
from ..seed import import_people
from ..stats import summarize
from .base import Context, Scenario, correctness

__all__ = ["ClaimPath"]

_AUDIENCE_LIMIT = 10_000  # most ids one broadcast accepts


class ClaimPath(Scenario):
    key = "s2"
    title = "Claim path"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.gateway: Gateway | None = None

    def setup(self) -> None:
        s = self.settings
        self.credentials = self.context.workspace("bench-s2")
        self.sides = {side: [f"s2-{side}-{i}" for i in range(s.s2_people)] for side in ("gateway", "ceiling")}
        for users in self.sides.values():
            import_people(self.context.database_url, self.credentials.workspace_id, users)
        self.gateway = self.context.gateway(s.workers)
        self.gateway.start()
        self.headers = {"Authorization": f"Bearer {self.credentials.api_key}"}
        status, workspace = fetch_json("GET", self.gateway.base_url + "/v1/workspace", headers=self.headers)
        if status != 200:
            raise RuntimeError(f"GET /v1/workspace answered {status}: {workspace}")
        self.lease_s = workspace["lease_s"]
        self.expected: dict[str, int] = {}
        self.broadcasts: dict[str, list[str]] = {}
        for side, users in self.sides.items():
            self.expected[side], self.broadcasts[side] = self._queue(users)
        self.say(f"{s.s2_people:,} people per side, {s.s2_messages} pending messages each "
                 f"({self.expected['gateway']:,} per side)")

    def _queue(self, users: list[str]) -> tuple[int, list[str]]:
        assert self.gateway is not None
        queued, ids = 0, []
        for seq in range(self.settings.s2_messages):
            for start in range(0, len(users), _AUDIENCE_LIMIT):
                body = {"audience": {"ids": users[start:start + _AUDIENCE_LIMIT]},
                        "content": {"title": f"message {seq}", "body": "pending"},
                        "properties": {"seq": seq}, "ttl_s": 3600}
                status, answer = fetch_json("POST", self.gateway.base_url + "/v1/broadcasts", body,
                                            headers=self.headers, timeout_s=120)
                if status != 201:
                    raise RuntimeError(f"POST /v1/broadcasts answered {status}: {answer}")
                queued += answer["queued"]
                ids.append(answer["id"])
        return queued, ids

    def _specs(self, side: str, processes: int) -> list[dict[str, Any]]:
        s = self.settings
        users = self.sides[side]
        common = {"devices_per_person": s.s2_devices, "concurrency": max(1, s.s2_concurrency // processes),
                  "deadline": self.deadline}
        if side == "gateway":
            assert self.gateway is not None
            return [{"kind": "claim_race", "base_url": self.gateway.base_url, "site_id": self.credentials.site_id,
                     "people": users[k::processes], **common} for k in range(processes)]
        return [{"kind": "claim_race_sql", "database_url": self.context.database_url,
                 "workspace_id": self.credentials.workspace_id, "lease_s": self.lease_s,
                 "claim_limit": CLAIM_LIMIT, "pool_size": POOL_MAX,
                 "people": users[k::processes], **common} for k in range(processes)]

    def _measure(self, side: str, processes: int) -> dict[str, Any]:
        with Fleet(self._specs(side, processes), name=f"s2-{side}") as fleet:
            fleet.wait_event("ready", 60)
            self.say(f"{side}: racing {self.settings.s2_devices} devices per person")
            fleet.send("go")
            results = fleet.results()
        delivered: dict[str, set[str]] = {}
        for r in results:
            for message_id, device in r["deliveries"]:
                delivered.setdefault(message_id, set()).add(device)
        latencies = [x for r in results for x in r["latencies"]]
        errors: dict[str, int] = {}
        for r in results:
            for code, n in r["errors"].items():
                errors[code] = errors.get(code, 0) + n
        seconds = max(r["finished"] for r in results) - min(r["started"] for r in results)
        counts = correctness(delivered, self.expected[side])
        self.samples[side] = latencies
        rate = counts["delivered"] / seconds if seconds > 0 else 0.0
        self.say(f"{side}: {rate:,.0f} deliveries/s in {seconds:.1f}s, duplicates {counts['duplicates']}, "
                 f"lost {counts['lost']}, errors {errors or 0}")
        return {"deliveries_per_s": round(rate, 1), "seconds": round(seconds, 3), "polls": len(latencies),
                "latency": summarize(latencies), "errors": errors, "expected": self.expected[side], **counts}

    def _left_queued(self) -> int:
        """Messages of the gateway side's broadcasts still queued, as the server API reports them."""
        assert self.gateway is not None
        left = 0
        for broadcast_id in self.broadcasts["gateway"]:
            status, answer = fetch_json("GET", f"{self.gateway.base_url}/v1/broadcasts/{broadcast_id}",
                                        headers=self.headers)
            if status != 200:
                raise RuntimeError(f"GET /v1/broadcasts/{broadcast_id} answered {status}: {answer}")
            left += answer["states"].get("queued", 0)
        return left

    def run(self) -> dict[str, Any]:
        self.arm()
        assert self.gateway is not None
        gateway = self._measure("gateway", self.settings.loadgen_processes)
        gateway["left_queued"] = self._left_queued()
        self.gateway.stop()
        self.gateway = None
        ceiling = self._measure("ceiling", self.settings.workers)
        ratio = gateway["deliveries_per_s"] / ceiling["deliveries_per_s"] if ceiling["deliveries_per_s"] else None
        return {
            "gateway": gateway,
            "ceiling": ceiling,
            "ratio": round(ratio, 3) if ratio is not None else None,
            "duplicates": gateway["duplicates"] + ceiling["duplicates"],
            "lost": gateway["lost"] + ceiling["lost"],
        }

    def teardown(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
