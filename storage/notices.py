"""The wake-up protocol's Python side: the NOTIFY channel, the typed notices, and their parser.

Rules: the database builds every payload, in the `mailslot_notify_*_v1` functions of migration
0006 (statements call them; Python never calls pg_notify), so this module only names the channel
and parses. The barrier marker (`notify_barrier`, migration 0019) is a bare token on a channel
only its own process listens to, so no other gateway ever parses it.
`tests/storage/test_notices.py` checks that what each statement sends parses here. The parser
stays lenient about what older gateways sent during a rolling deploy (no `at`, no `keys`,
unknown fields) and strict about types: anything else is logged and dropped.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import orjson

from .errors import translate_errors
from .pool import Executor
from .sql import queries

__all__ = [
    "NOTIFY_CHANNEL",
    "BroadcastNotice",
    "Notice",
    "QueueNotice",
    "WorkspaceNotice",
    "barrier_channel",
    "notify_barrier",
    "parse_notice",
]

log = logging.getLogger("mailslot.storage.notices")

# Versioned so that a rolling deploy can change the payload without confusing old listeners;
# the same literal sits once in SQL, in mailslot_notify_v1.
NOTIFY_CHANNEL = "mailslot_queue_v1"

# A process's own barrier channel is this prefix plus a random suffix (an identifier: at most 63 bytes).
BARRIER_CHANNEL_PREFIX = "mailslot_barrier_v1_"


def barrier_channel() -> str:
    """A fresh channel name for one process's barrier markers, heard by no other process."""
    return BARRIER_CHANNEL_PREFIX + secrets.token_hex(8)


@translate_errors
async def notify_barrier(db: Executor, channel: str, token: str, *, timeout_s: float | None = None) -> None:
    """Send a barrier marker; PostgreSQL delivers notifications in commit order, so hearing it back
    proves every notice committed before it was heard."""
    await db.execute(queries["notify_barrier"], channel, token, timeout=timeout_s)


@dataclass(frozen=True, slots=True)
class QueueNotice:
    """Messages became deliverable for a person known by these keys (external id, email)."""

    workspace: int
    person: int
    keys: tuple[str, ...]
    at: float | None


@dataclass(frozen=True, slots=True)
class BroadcastNotice:
    """A broadcast queued messages for many people of a workspace: one notice for all of them."""

    workspace: int
    at: float | None


@dataclass(frozen=True, slots=True)
class WorkspaceNotice:
    """A workspace's settings changed: cached copies are stale."""

    workspace: int


Notice = QueueNotice | BroadcastNotice | WorkspaceNotice


def parse_notice(payload: str) -> Notice | None:
    """A typed notice, or None (logged) for anything malformed."""
    try:
        data = orjson.loads(payload)
        kind = data["type"]
        if kind == "queued":
            keys = data.get("keys", [])
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise ValueError("keys must be a list of strings")
            at = data.get("at")
            return QueueNotice(int(data["workspace"]), int(data["person"]), tuple(keys),
                               float(at) if at is not None else None)
        if kind == "broadcast":
            at = data.get("at")
            return BroadcastNotice(int(data["workspace"]), float(at) if at is not None else None)
        if kind == "workspace":
            return WorkspaceNotice(int(data["workspace"]))
        raise ValueError(f"unknown type {kind!r}")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.warning("dropping malformed notification %r: %s", payload[:200], exc)
        return None
