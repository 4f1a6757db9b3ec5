"""What the console reads and writes beyond the API's statements: its sessions and sign-in links,
counts for its pages (pending messages, an audience, states, a funnel), and devices' last polls.

Tokens arrive already hashed: the caller (gateway/core/console.py) makes and hashes them, so no
token is ever stored in clear.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from .errors import translate_errors
from .messages import _message
from .models import Message, Workspace
from .pool import Executor
from .sql import queries
from .workspaces import _workspace

__all__ = [
    "Campaign",
    "CampaignCounts",
    "ConsoleSession",
    "DevicePoll",
    "FunnelCount",
    "count_broadcast_audience",
    "count_campaign_messages",
    "count_funnel_events",
    "count_pending_messages",
    "count_workspace_messages",
    "create_console_token",
    "delete_console_session",
    "get_console_session",
    "list_broadcast_ids",
    "list_broadcast_titles",
    "list_campaigns",
    "list_person_devices",
    "list_workspace_messages",
    "record_device_polls",
    "use_console_link",
]


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in console: its workspace and the token its forms must carry."""

    workspace: Workspace
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class FunnelCount:
    """How many messages had an event of `type` within the bucket that starts at `bucket`."""

    bucket: datetime
    type: str
    count: int


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    messages: int
    first_sent_at: datetime
    last_sent_at: datetime


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    """A campaign's messages still held (retention keeps no per-campaign summary), by state."""

    total: int
    first_sent_at: datetime | None
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class DevicePoll:
    device_id: str
    polled_at: datetime


@translate_errors
async def create_console_token(
    db: Executor, token_hash: bytes, workspace_id: int, kind: str, csrf_token: str, now: datetime | None,
    lifetime_s: int,
) -> datetime:
    """Store a session or a sign-in link (sweeping expired ones); returns when it expires."""
    expires_at: datetime = await db.fetchval(
        queries["create_console_token"], token_hash, workspace_id, kind, csrf_token, now, lifetime_s
    )
    return expires_at


@translate_errors
async def get_console_session(db: Executor, token_hash: bytes, now: datetime | None) -> ConsoleSession | None:
    row = await db.fetchrow(queries["get_console_session"], token_hash, now)
    if row is None:
        return None
    return ConsoleSession(_workspace(row), row["csrf_token"], row["expires_at"])


@translate_errors
async def use_console_link(db: Executor, token_hash: bytes, now: datetime | None) -> int | None:
    """The workspace of a one-time link, which this call spends; None: unknown, used or expired."""
    workspace_id: int | None = await db.fetchval(queries["use_console_link"], token_hash, now)
    return workspace_id


@translate_errors
async def delete_console_session(db: Executor, token_hash: bytes) -> None:
    await db.execute(queries["delete_console_session"], token_hash)


@translate_errors
async def count_pending_messages(db: Executor, workspace_id: int, now: datetime | None) -> int:
    """What disabling in-app messaging would recall."""
    pending: int = await db.fetchval(queries["count_pending_messages"], workspace_id, now)
    return pending


@translate_errors
async def count_broadcast_audience(
    db: Executor, workspace_id: int, ids: list[str], emails: list[str], everyone: bool,
    path: str | None, variables: object,
) -> int:
    audience: int = await db.fetchval(
        queries["count_broadcast_audience"], workspace_id, ids, emails, everyone, path, variables
    )
    return audience


@translate_errors
async def list_workspace_messages(
    db: Executor, workspace_id: int, limit: int, now: datetime | None, state: str | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[Message]:
    """A page of messages, newest first; `before` is the (created_at, id) of the previous page's last."""
    at, message_id = before if before else (None, None)
    rows = await db.fetch(queries["list_workspace_messages"], workspace_id, limit, now, state, at, message_id)
    return [_message(r) for r in rows]


@translate_errors
async def count_workspace_messages(db: Executor, workspace_id: int, now: datetime | None) -> dict[str, int]:
    rows = await db.fetch(queries["count_workspace_messages"], workspace_id, now)
    return {r["state"]: r["n"] for r in rows}


@translate_errors
async def list_broadcast_ids(
    db: Executor, workspace_id: int, limit: int, before: tuple[datetime, uuid.UUID] | None = None
) -> list[uuid.UUID]:
    """A page of broadcast ids, newest first; `before` is the (created_at, id) of the previous page's last."""
    at, broadcast_id = before if before else (None, None)
    rows = await db.fetch(queries["list_broadcast_ids"], workspace_id, limit, at, broadcast_id)
    return [r["id"] for r in rows]


@translate_errors
async def list_broadcast_titles(db: Executor, workspace_id: int, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each broadcast's title (or else body) by id; ids of other workspaces are left out."""
    rows = await db.fetch(queries["list_broadcast_titles"], workspace_id, ids)
    return {r["id"]: r["title"] for r in rows}


@translate_errors
async def list_campaigns(db: Executor, workspace_id: int, limit: int) -> list[Campaign]:
    rows = await db.fetch(queries["list_campaigns"], workspace_id, limit)
    return [Campaign(r["campaign"], r["messages"], r["first_sent_at"], r["last_sent_at"]) for r in rows]


_COUNT_KEYS = ("queued", "offered", "shown", "action", "dismissed", "expired", "recalled")


@translate_errors
async def count_campaign_messages(
    db: Executor, workspace_id: int, campaign: str, now: datetime | None
) -> CampaignCounts:
    row = await db.fetchrow(queries["count_campaign_messages"], workspace_id, campaign, now)
    return CampaignCounts(row["total"], row["first_sent_at"], {k: row["n_" + k] for k in _COUNT_KEYS})


@translate_errors
async def count_funnel_events(
    db: Executor, workspace_id: int, *, broadcast_id: uuid.UUID | None = None, campaign: str | None = None,
    bucket_s: int,
) -> list[FunnelCount]:
    rows = await db.fetch(queries["count_funnel_events"], workspace_id, broadcast_id, campaign, bucket_s)
    return [FunnelCount(r["bucket"], r["type"], r["n"]) for r in rows]


@translate_errors
async def list_person_devices(db: Executor, person_id: int) -> list[DevicePoll]:
    rows = await db.fetch(queries["list_person_devices"], person_id)
    return [DevicePoll(r["device_id"], r["polled_at"]) for r in rows]


@translate_errors
async def record_device_polls(
    db: Executor, polls: list[tuple[int, str, str, datetime | None]]
) -> None:
    """Write many devices' last polls (workspace id, user, device id, time or None for now) in one statement."""
    if not polls:
        return
    workspace_ids, users, device_ids, times = (list(column) for column in zip(*polls, strict=True))
    await db.execute(queries["record_device_polls"], workspace_ids, users, device_ids, times)
