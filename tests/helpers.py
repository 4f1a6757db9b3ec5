"""A small client for both APIs, so tests read like the contract."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.identity import user_hash
from storage import WorkspaceCredentials

__all__ = ["Api", "Reply", "assert_message_style", "metric_value", "wait_until"]


# Words of the libraries under us (msgspec, orjson, asyncpg, Python): a message must not leak them.
_LIBRARY_WORDING = re.compile(
    r"Expected `|Object (missing|contains)|Invalid (UUID|enum)|RFC3339|regex|"
    r"Traceback|asyncpg|NoneType|Exception|Error\b"
)


def assert_message_style(message: str) -> None:
    """An error message as docs/api.md promises: one sentence saying what was wrong and how to fix it."""
    assert isinstance(message, str) and 1 <= len(message) <= 300, message
    assert "\n" not in message, message
    assert message[0].islower() or message[0] in "`$", f"starts in lower case or with a field: {message!r}"
    assert not message.endswith("."), f"no closing period: {message!r}"
    assert not re.search(r"\. [A-Z]", message), f"one sentence: {message!r}"
    assert not _LIBRARY_WORDING.search(message), f"library wording: {message!r}"


class Reply:
    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and "error" in self.body:
            return str(self.body["error"]["code"])
        return None

    @property
    def message_ids(self) -> list[str]:
        """The ids of a poll answer's messages, in the order given."""
        return [m["id"] for m in self.body["messages"]]

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body!r})"


class Api:
    def __init__(self, client: TestClient, credentials: WorkspaceCredentials) -> None:
        self.client = client
        self.credentials = credentials
        self.workspace = credentials.workspace
        self.site_id = credentials.workspace.site_id
        self.api_key = credentials.api_key

    async def request(self, method: str, path: str, *, json: Any = None, data: bytes | None = None,
                      headers: dict[str, str] | None = None, auth: bool = True) -> Reply:
        all_headers = {"Authorization": f"Bearer {self.api_key}"} if auth else {}
        all_headers.update(headers or {})
        async with self.client.request(method, path, json=json, data=data, headers=all_headers) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return Reply(response.status, body, dict(response.headers))

    # Server API
    async def send(self, to: dict[str, str] | str, title: str = "Hello", *, headers: dict[str, str] | None = None,
                   **fields: Any) -> Reply:
        recipient = {"id": to} if isinstance(to, str) else to
        content = fields.pop("content", {"title": title, "body": "A message for you"})
        return await self.request("POST", "/v1/messages", json={"to": recipient, "content": content, **fields},
                                  headers=headers)

    async def message(self, message_id: str) -> Reply:
        return await self.request("GET", f"/v1/messages/{message_id}")

    async def recall(self, message_id: str) -> Reply:
        return await self.request("DELETE", f"/v1/messages/{message_id}")

    async def identify(self, person_id: str, **attributes: Any) -> Reply:
        return await self.request("PUT", f"/v1/people/{person_id}", json=attributes)

    async def person_messages(self, person: str, *, by: str | None = None) -> Reply:
        query = f"?by={by}" if by else ""
        return await self.request("GET", f"/v1/people/{person}/messages{query}")

    async def event_types(self, message_id: str) -> list[str]:
        """The types of a message's recorded events, oldest first."""
        read = await self.message(message_id)
        assert read.status == 200, read
        return [e["type"] for e in read.body["events"]]

    async def patch_workspace(self, **fields: Any) -> Reply:
        return await self.request("PATCH", "/v1/workspace", json=fields)

    # Device API
    def hash_for(self, user: str) -> str:
        return user_hash(self.workspace.identity_secret, user)

    async def poll(self, user: str, device_id: str, **fields: Any) -> Reply:
        body = {"site_id": self.site_id, "user": user, "device_id": device_id, **fields}
        return await self.request("POST", "/v1/poll", json=body, auth=False)

    async def report(self, user: str, device_id: str, *events: dict[str, Any], **fields: Any) -> Reply:
        body = {"site_id": self.site_id, "user": user, "device_id": device_id, "events": list(events), **fields}
        return await self.request("POST", "/v1/events", json=body, auth=False)

    async def device_identify(self, user: str, attributes: dict[str, Any], **fields: Any) -> Reply:
        """The SDK's identify (`POST /v1/identify`), with the proof for `user` unless given."""
        body = {"site_id": self.site_id, "user": user, "user_hash": self.hash_for(user),
                "attributes": attributes, **fields}
        return await self.request("POST", "/v1/identify", json=body, auth=False)

    async def show(self, user: str, device_id: str, message_id: str) -> Reply:
        return await self.report(user, device_id, {"message_id": message_id, "type": "shown"})

    async def dismiss(self, user: str, device_id: str, message_id: str) -> Reply:
        return await self.report(user, device_id, {"message_id": message_id, "type": "dismissed"})

    def hold(self, user: str, device_id: str, wait: float) -> asyncio.Task[Reply]:
        """A held poll running in the background; await the task for its answer."""
        task = asyncio.create_task(self.poll(user, device_id, wait=wait), name=f"poll {user}/{device_id}")
        # A test that failed before awaiting it leaves it to be cut off at teardown: no extra noise.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    # Operations
    async def metrics_text(self) -> str:
        """`GET /metrics` as Prometheus text."""
        reply = await self.request("GET", "/metrics", auth=False)
        assert reply.status == 200, reply
        assert reply.headers["Content-Type"].startswith("text/plain"), reply.headers
        assert isinstance(reply.body, str), reply
        return reply.body

    async def metric(self, name: str, **labels: str) -> float:
        """One sample's value from `/metrics` (summed over unnamed labels; 0 when absent)."""
        return metric_value(await self.metrics_text(), name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`; 0 when there are none."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def wait_until(condition: Callable[[], bool | Awaitable[bool]], *, within: float = 10, what: str = "") -> None:
    """Check `condition` every 10 ms until it holds; fail the test after `within` seconds."""

    async def check() -> None:
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(check(), within)
    except TimeoutError:
        raise AssertionError(f"still not true after {within} s: {what or condition}") from None
