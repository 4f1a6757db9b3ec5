"""Scenario 1: empty short polls, the gateway against a bare aiohttp + uvloop + orjson ceiling.

Every device belongs to an identified person with an empty queue, so each poll is the claim
statement finding nothing plus the interval policy. The ceiling answers the very bytes the
gateway answered, from as many SO_REUSEPORT workers; both sides get the same load generators.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..fetch import fetch_json
from ..harness import CeilingServer, Gateway, Service
from ..loadgen import Fleet
from ..seed import import_people
from ..stats import summarize
from .base import Context, Scenario

__all__ = ["ShortPolls"]


class ShortPolls(Scenario):
    key = "s1"
    title = "Empty short polls"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.gateway: Gateway | None = None
        self.ceiling: CeilingServer | None = None

    def setup(self) -> None:
        s = self.settings
        self.credentials = self.context.workspace("bench-s1")
        self.users = [f"s1-person-{i}" for i in range(s.s1_people)]
        import_people(self.context.database_url, self.credentials.workspace_id, self.users)
        self.say(f"{len(self.users):,} people with empty queues; starting the gateway ({s.workers} workers)")
        self.gateway = self.context.gateway(s.workers)
        self.gateway.start()
        status, self.empty_answer = fetch_json("POST", self.gateway.base_url + "/v1/poll", self._bodies()[0])
        if status != 200:
            raise RuntimeError(f"an empty poll answered {status}: {self.empty_answer}")

    def _bodies(self) -> list[dict[str, Any]]:
        site_id = self.credentials.site_id
        return [{"site_id": site_id, "user": user, "device_id": f"web-{i}"} for i, user in enumerate(self.users)]

    def _measure(self, server: Service, label: str) -> dict[str, Any]:
        s = self.settings
        processes = s.loadgen_processes
        bodies = self._bodies()
        specs = [
            {"kind": "short_polls", "url": server.base_url + "/v1/poll", "bodies": bodies[k::processes],
             "connections": max(1, s.s1_connections // processes), "seconds": s.s1_seconds,
             "warmup_s": s.s1_warmup_s, "deadline": self.deadline}
            for k in range(processes)
        ]
        with Fleet(specs, name=f"s1-{label}") as fleet:
            fleet.wait_event("ready", 60)
            self.say(f"{label}: {s.s1_connections} connections for {s.s1_warmup_s:.0f}+{s.s1_seconds:.0f}s")
            fleet.send("go")
            results = fleet.results()
        latencies = [x for r in results for x in r["latencies"]]
        errors: dict[str, int] = {}
        for r in results:
            for code, n in r["errors"].items():
                errors[code] = errors.get(code, 0) + n
        self.samples[label] = latencies
        rate = len(latencies) / s.s1_seconds
        self.say(f"{label}: {rate:,.0f} polls/s, {len(latencies):,} polls, errors {errors or 0}")
        return {"polls": len(latencies), "polls_per_s": round(rate, 1), "latency": summarize(latencies),
                "errors": errors}

    def run(self) -> dict[str, Any]:
        self.arm()
        assert self.gateway is not None
        gateway = self._measure(self.gateway, "gateway")
        self.gateway.stop()
        self.gateway = None
        self.ceiling = CeilingServer(self.context.work_dir, workers=self.settings.workers, body=self.empty_answer)
        self.ceiling.start()
        ceiling = self._measure(self.ceiling, "ceiling")
        ratio = gateway["polls_per_s"] / ceiling["polls_per_s"] if ceiling["polls_per_s"] else None
        return {
            "gateway": gateway,
            "ceiling": ceiling,
            "ratio": round(ratio, 3) if ratio is not None else None,
            "answer_bytes": len(orjson.dumps(self.empty_answer)),
            # No message exists in this scenario: nothing can be duplicated or lost.
            "duplicates": 0,
            "lost": 0,
        }

    def teardown(self) -> None:
        for server in (self.gateway, self.ceiling):
            if server is not None:
                server.stop()
