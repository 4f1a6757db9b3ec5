"""A small client for both APIs, so tests read like the contract."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from gateway.identity import user_hash
from storage import WorkspaceCredentials

__all__ = ["Api", "Reply"]


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

    async def show(self, user: str, device_id: str, message_id: str) -> Reply:
        return await self.report(user, device_id, {"message_id": message_id, "type": "shown"})
