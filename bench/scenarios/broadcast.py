"""Scenario 4: one broadcast to everyone in a workspace of a million people.

The people are created in bulk (`storage.import_people`); some devices of the audience (two per
person, so first-device-wins is checked too) hold long polls. Then one `POST /v1/broadcasts`
with `{"audience": {"all": true}}`: people/s is the queued count over the request's duration, and
the devices measure the time from the request's start to their answer.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..fetch import fetch_json
from ..harness import Gateway
from ..loadgen import Fleet
from ..seed import import_people
from ..settings import PER_PROCESS_CONNECTIONS
from ..stats import summarize
from .base import Context, Scenario
from .held_polls import drain, source_address, wait_until_held

__all__ = ["BroadcastFanOut"]


class BroadcastFanOut(Scenario):
    key = "s4"
    title = "Broadcast fan-out"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.gateway: Gateway | None = None

    def setup(self) -> None:
        s = self.settings
        self.credentials = self.context.workspace("bench-s4")
        users = [f"s4-person-{i}" for i in range(s.s4_people)]
        started = time.monotonic()
        last = [started]

        def progress(done: int) -> None:
            if time.monotonic() - last[0] >= 2 or done == len(users):
                last[0] = time.monotonic()
                self.say(f"created {done:,}/{len(users):,} people")

        import_people(self.context.database_url, self.credentials.workspace_id, users, chunk=s.s4_chunk,
                      progress=progress)
        self.seed_seconds = time.monotonic() - started
        step = max(1, len(users) // max(1, s.s4_parked // 2))
        self.parked_people = users[::step][: max(1, s.s4_parked // 2)]
        self.gateway = self.context.gateway(s.workers)
        self.gateway.start()

    def run(self) -> dict[str, Any]:
        s = self.settings
        gateway = self.gateway
        assert gateway is not None
        self.arm()
        devices = [(2 * i + d, user, f"web-{d}") for i, user in enumerate(self.parked_people) for d in range(2)]
        processes = max(1, math.ceil(len(devices) / PER_PROCESS_CONNECTIONS))
        specs = [{"kind": "held_polls", "base_url": gateway.base_url, "site_id": self.credentials.site_id,
                  "devices": devices[k::processes], "wait_s": s.s3_wait_s, "ramp_per_s": s.s3_ramp / processes,
                  "local_addr": source_address(k), "deadline": self.deadline} for k in range(processes)]
        with Fleet(specs, name="s4-parked") as held:
            held.wait_event("ready", len(devices) / s.s3_ramp + 60)
            parked = wait_until_held(self, lambda: gateway.metric("mailslot_parked_polls"), len(devices))
            self.say(f"{parked:,} devices parked; broadcasting to all {s.s4_people:,} people")
            sent_at = time.time()
            body = {"audience": {"all": True}, "content": {"title": "Broadcast", "body": "to everyone"},
                    "properties": {"sent_at": sent_at}, "ttl_s": 86400, "campaign": "bench-s4"}
            status, answer = fetch_json("POST", gateway.base_url + "/v1/broadcasts", body,
                                        headers={"Authorization": f"Bearer {self.credentials.api_key}"},
                                        timeout_s=max(60.0, self.deadline - time.time()))
            request_s = time.time() - sent_at
            failure = None
            if status == 201:
                queued = answer["queued"]
                self.say(f"queued {queued:,} in {request_s:.1f}s ({queued / request_s:,.0f} people/s)")
                drain(self, held, len(self.parked_people), idle_s=15, cap_s=60)
            else:
                # A refused broadcast must queue nothing: read one parked person's queue back to show it.
                failure = f"{status} {answer.get('error', {}).get('code') if isinstance(answer, dict) else answer}"
                queued = self._queued_for(self.parked_people[0])
                self.say(f"the broadcast failed after {request_s:.1f}s: {failure}; "
                         f"{queued} message(s) queued for {self.parked_people[0]}")
            held.send("stop")
            results = held.results()
        person_of = {index: user for index, user, _ in devices}
        delivered: dict[str, set[str]] = {}
        first_by_person: dict[str, float] = {}
        for r in results:
            for message_id, index, latency in r["received"]:
                delivered.setdefault(message_id, set()).add(str(index))
                user = person_of[index]
                first_by_person[user] = min(latency, first_by_person.get(user, math.inf))
        latencies = sorted(first_by_person.values())
        self.samples["parked_devices"] = latencies
        duplicates = sum(1 for devices_of in delivered.values() if len(devices_of) > 1)
        # Lost: queued for a parked person who never got it, or fewer queued than the audience.
        lost = 0 if failure else (len(self.parked_people) - len(first_by_person)) + max(0, s.s4_people - queued)
        errors: dict[str, int] = {}
        for r in results:
            for code, n in r["errors"].items():
                errors[code] = errors.get(code, 0) + n
        return {
            "people": s.s4_people,
            "seed_seconds": round(self.seed_seconds, 2),
            "queued": queued,
            "broadcast_failure": failure,
            "request_seconds": round(request_s, 3),
            "people_per_s": None if failure else round(queued / request_s, 1),
            "people_per_s_at_most": round(s.s4_people / request_s, 1) if failure else None,
            "parked_devices": parked,
            "first_parked_s": round(latencies[0], 4) if latencies else None,
            "all_parked_s": round(latencies[-1], 4) if len(latencies) == len(self.parked_people) else None,
            "to_parked": summarize(latencies),
            "errors": errors,
            "delivered": len(first_by_person),
            "duplicates": duplicates,
            "lost": lost,
        }

    def _queued_for(self, person: str) -> int:
        assert self.gateway is not None
        status, answer = fetch_json("GET", f"{self.gateway.base_url}/v1/people/{person}/messages",
                                    headers={"Authorization": f"Bearer {self.credentials.api_key}"})
        return len(answer.get("messages", [])) if status == 200 and isinstance(answer, dict) else -1

    def teardown(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
