"""Scenario 6: retention keeps the messages table flat while the total sent keeps growing.

Each round stands for one day of a workspace whose `retention_days` is 1. It first ages every
row of the workspace by a day (`bench.aging`: test scaffolding, straight SQL, because retention
counts days on the database clock and a bench cannot wait a day), then broadcasts one message to
each of its people, polls every person's one device over HTTP, reports `shown` then `dismissed`
for each offer, and waits for the gateway's own retention sweeper (a short
`--retention-interval-s`) to delete what the aging made due: the previous round's messages and
their events. Then it measures the workspace's rows and both tables' on-disk size. In a steady
state one round's worth of messages is left after each round, however many were sent in all.

Every offer is counted by message id: one offered in two polls is a duplicate, one queued but
never offered is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..aging import TableSizes, age_workspace, due_for_retention, table_sizes
from ..fetch import fetch_json
from ..harness import Gateway
from ..seed import import_people
from ..wire import Connection, HttpError, connect
from .base import Context, Scenario

__all__ = ["RetentionFlat"]

_AUDIENCE_LIMIT = 10_000  # most ids one broadcast accepts
_SWEEP_WAIT_S = 120.0  # a sweep deletes 500 rows per statement, every `--retention-interval-s`
NETWORK_ERRORS = (HttpError, OSError, asyncio.TimeoutError)


class RetentionFlat(Scenario):
    key = "s6"
    title = "Retention: table size stays flat"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.gateway: Gateway | None = None

    def setup(self) -> None:
        s = self.settings
        self.credentials = self.context.workspace("bench-s6")
        self.users = [f"s6-person-{i}" for i in range(s.s6_people)]
        import_people(self.context.database_url, self.credentials.workspace_id, self.users)
        self.gateway = self.context.gateway(
            s.workers, extra=("--retention-interval-s", str(s.s6_retention_interval_s)))
        self.gateway.start()
        self.headers = {"Authorization": f"Bearer {self.credentials.api_key}"}
        status, answer = fetch_json("PATCH", self.gateway.base_url + "/v1/workspace", {"retention_days": 1},
                                    headers=self.headers)
        if status != 200 or answer.get("retention_days") != 1:
            raise RuntimeError(f"PATCH /v1/workspace answered {status}: {answer}")
        self.say(f"{len(self.users):,} people, one message each per round, {s.s6_rounds} rounds, retention 1 day, "
                 f"sweep every {s.s6_retention_interval_s}s")

    def _broadcast(self, round_no: int) -> int:
        """One message to every person; returns how many were queued."""
        assert self.gateway is not None
        queued = 0
        for start in range(0, len(self.users), _AUDIENCE_LIMIT):
            body = {"audience": {"ids": self.users[start:start + _AUDIENCE_LIMIT]},
                    "content": {"title": f"round {round_no}", "body": "retention"},
                    "properties": {"round": round_no}, "ttl_s": 7 * 86400}
            status, answer = fetch_json("POST", self.gateway.base_url + "/v1/broadcasts", body,
                                        headers=self.headers, timeout_s=120)
            if status != 201:
                raise RuntimeError(f"POST /v1/broadcasts answered {status}: {answer}")
            queued += int(answer["queued"])
        return queued

    async def _deliver(self, offers: Counter[str], errors: Counter[str]) -> int:
        """Poll every person once and report shown + dismissed for each offer; returns the offers seen."""
        assert self.gateway is not None
        parts = urlsplit(self.gateway.base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        site_id = self.credentials.site_id
        queue: asyncio.Queue[str] = asyncio.Queue()
        for user in self.users:
            queue.put_nowait(user)
        seen = 0

        async def worker() -> None:
            nonlocal seen
            conn: Connection | None = None
            try:
                while not queue.empty():
                    user = queue.get_nowait()
                    device = {"site_id": site_id, "user": user, "device_id": f"web-{user}"}
                    if conn is None or conn.closed:
                        conn = await connect(host, port)
                    try:
                        status, _, raw = await conn.request("POST", "/v1/poll", orjson.dumps(device))
                        if status != 200:
                            errors[f"poll {status}"] += 1
                            continue
                        ids = [m["id"] for m in orjson.loads(raw)["messages"]]
                        for message_id in ids:
                            offers[message_id] += 1
                        seen += len(ids)
                        if not ids:
                            continue
                        events = [{"message_id": i, "type": t} for i in ids for t in ("shown", "dismissed")]
                        status, _, raw = await conn.request("POST", "/v1/events",
                                                            orjson.dumps({**device, "events": events}))
                        if status != 200:
                            errors[f"events {status}"] += 1
                        elif rejected := orjson.loads(raw)["rejected"]:
                            errors["events rejected"] += len(rejected)
                    except NETWORK_ERRORS as exc:
                        errors[type(exc).__name__] += 1
                        conn = None
            finally:
                if conn is not None:
                    conn.close()

        await asyncio.gather(*(worker() for _ in range(max(1, self.settings.s6_connections))))
        return seen

    def _wait_for_sweep(self) -> float:
        """Seconds until the gateway's sweeper deleted every row the aging made due."""
        started = time.monotonic()
        workspace_id = self.credentials.workspace_id
        while (due := due_for_retention(self.context.database_url, workspace_id)) > 0:
            if time.monotonic() - started > _SWEEP_WAIT_S:
                raise RuntimeError(f"{due} messages still due for retention after {_SWEEP_WAIT_S:.0f}s")
            time.sleep(0.2)
        return time.monotonic() - started

    def run(self) -> dict[str, Any]:
        self.arm()
        s = self.settings
        url, workspace_id = self.context.database_url, self.credentials.workspace_id
        offers: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        rounds: list[dict[str, Any]] = []
        sent = 0
        for round_no in range(1, s.s6_rounds + 1):
            age_workspace(url, workspace_id, days=1)
            queued = self._broadcast(round_no)
            sent += queued
            offered = asyncio.run(self._deliver(offers, errors))
            sweep_s = self._wait_for_sweep()
            sizes: TableSizes = table_sizes(url, workspace_id)
            rounds.append({"round": round_no, "sent": sent, "queued": queued, "offered": offered,
                           "sweep_wait_s": round(sweep_s, 2), **sizes.as_json()})
            self.say(f"round {round_no}: sent {sent:,} in all, {sizes.messages:,} message rows, "
                     f"{sizes.events:,} event rows, {(sizes.messages_bytes + sizes.events_bytes) / 2**20:.1f} MiB "
                     f"(sweep took {sweep_s:.1f}s)")
        duplicates = sum(1 for n in offers.values() if n > 1)
        lost = max(0, sent - len(offers))
        last = rounds[len(rounds) // 2:]

        def ratio(name: str) -> float | None:
            values = [r[name] for r in last]
            return round(max(values) / min(values), 3) if values and min(values) > 0 else None

        per_round = s.s6_people
        return {
            "rounds": rounds,
            "people": s.s6_people,
            "sent": sent,
            "delivered": len(offers),
            "duplicates": duplicates,
            "lost": lost,
            "errors": dict(errors),
            "messages_rows_final": rounds[-1]["messages"] if rounds else None,
            "events_rows_final": rounds[-1]["events"] if rounds else None,
            "messages_rows_max_last_half": max((r["messages"] for r in last), default=None),
            # Rows left after the last round, in rounds' worth of messages: flat means about 1.
            "messages_rows_in_rounds": round(rounds[-1]["messages"] / per_round, 3) if rounds and per_round else None,
            "messages_rows_ratio_last_half": ratio("messages"),
            "events_rows_ratio_last_half": ratio("events"),
            "messages_bytes_ratio_last_half": ratio("messages_bytes"),
            "events_bytes_ratio_last_half": ratio("events_bytes"),
        }

    def teardown(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
