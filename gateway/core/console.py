"""The console's own product rules: who is signed in, and the facts its pages show.

Sessions live in the database (decision 0020): a sign-out or an expiry holds in every process at
once, and no server secret has to be shared between workers. A token is 256 random bits; only
its SHA-256 is stored. Everything the console *does* (send, broadcast, recall, settings,
templates, triggers) goes through the same core functions as the HTTP API; this module only adds
what the API has no use for.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

import storage
from storage import ConsoleSession, DevicePoll, Message, Person, Workspace

from ..errors import ErrorCode, NotFound, Unauthorized
from .broadcasts import AudienceChoice, audience_of
from .budget import off_loop
from .device_polls import DevicePolls
from .intervals import Intervals, Tier
from .sends import Personalization, personalized

__all__ = [
    "LINK_LIFETIME_S",
    "PersonReport",
    "audience_count",
    "create_link",
    "disable_preview",
    "open_link",
    "person_report",
    "preview",
    "session",
    "sign_in",
    "sign_out",
]

# A printed sign-in link is for the person at the terminal now.
LINK_LIFETIME_S = 15 * 60


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _new_session(pool: asyncpg.Pool, workspace_id: int, now: datetime | None, lifetime_s: int) -> str:
    token = secrets.token_urlsafe(32)
    await storage.create_console_token(
        pool, _hash(token), workspace_id, "session", secrets.token_urlsafe(32), now, lifetime_s
    )
    return token


async def sign_in(
    pool: asyncpg.Pool, workspace: Workspace | None, now: datetime | None, lifetime_s: int
) -> str:
    """A new session token for the workspace an API key named (None: the key was wrong)."""
    if workspace is None:
        raise Unauthorized("this API key is not valid: use the key `mailslot workspace create` printed",
                           code=ErrorCode.UNAUTHORIZED)
    return await _new_session(pool, workspace.id, now, lifetime_s)


async def create_link(pool: asyncpg.Pool, workspace_id: int, now: datetime | None = None) -> str:
    """A one-time sign-in token for `mailslot console-link`, valid LINK_LIFETIME_S."""
    token = secrets.token_urlsafe(32)
    await storage.create_console_token(pool, _hash(token), workspace_id, "link", "", now, LINK_LIFETIME_S)
    return token


async def open_link(pool: asyncpg.Pool, token: str, now: datetime | None, lifetime_s: int) -> str:
    """Spend a one-time link and open a session for its workspace."""
    workspace_id = await storage.use_console_link(pool, _hash(token), now) if token else None
    if workspace_id is None:
        raise Unauthorized(
            "this sign-in link was used already or has expired: run `mailslot console-link` for a new one",
            code=ErrorCode.CONSOLE_SIGN_IN_REQUIRED,
        )
    return await _new_session(pool, workspace_id, now, lifetime_s)


async def session(pool: asyncpg.Pool, token: str, now: datetime | None) -> ConsoleSession | None:
    """The live session a cookie names; None when it is unknown or expired."""
    if not token or len(token) > 128 or not token.isascii():
        return None
    return await storage.get_console_session(pool, _hash(token), now)


async def sign_out(pool: asyncpg.Pool, token: str) -> None:
    await storage.delete_console_session(pool, _hash(token))


async def disable_preview(pool: asyncpg.Pool, workspace_id: int, now: datetime | None) -> int:
    """How many queued and offered messages disabling in-app messaging would recall now."""
    return await storage.count_pending_messages(pool, workspace_id, now)


async def audience_count(pool: asyncpg.Pool, workspace_id: int, choice: AudienceChoice) -> int:
    """How many people a broadcast to `choice` would reach now (a bad filter: 422, as when sending)."""
    audience = audience_of(choice)
    flt = audience.filter
    return await storage.count_broadcast_audience(
        pool, workspace_id, list(audience.ids), [e.lower() for e in audience.emails], audience.everyone,
        flt.path if flt else None, flt.vars if flt else None,
    )


async def preview(
    pool: asyncpg.Pool, workspace_id: int, content: dict[str, Any], person_key: str
) -> dict[str, Any]:
    """The content as `person_key` (an id or email; empty: nobody) would receive it, rendered as a send
    renders it (same Liquid, same render budget); a template error is the 422 a send would give."""
    person = await storage.get_person(pool, workspace_id, person_key) if person_key else None
    if person_key and person is None:
        raise NotFound("no person with this id or email in this workspace", code=ErrorCode.UNKNOWN_PERSON)
    render = personalized(content, Personalization())
    if render is None:
        return content
    nobody = Person(id=0, external_id=None, email=None, attributes={})
    return await off_loop(render, person or nobody)


@dataclass(frozen=True, slots=True)
class PersonReport:
    """A person's queue, devices and events, and the answer to "why didn't they see it?" in words."""

    person: Person
    messages: list[Message]
    events: dict[uuid.UUID, list[storage.Event]]
    devices: list[DevicePoll]
    tier: Tier
    interval_s: int
    explanation: list[str]


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _tier(messages: list[Message], now: datetime, intervals: Intervals) -> tuple[Tier, int]:
    """The tier the person's devices are in, as the poll computes it (without jitter)."""
    if any(m.state in ("queued", "offered") for m in messages):
        return "active", intervals.active_s
    latest = max((m.created_at for m in messages), default=None)
    if latest is not None and now - latest <= timedelta(days=intervals.recent_days):
        return "inactive", intervals.inactive_s
    return "low", intervals.low_s


def explain(messages: list[Message], devices: list[DevicePoll], now: datetime, interval_s: int) -> list[str]:
    """One sentence per waiting message saying why it has not been seen, from the facts alone."""
    lines = []
    last_poll = devices[0].polled_at if devices else None
    for m in messages:
        if m.state == "queued":
            if last_poll is None:
                why = "no device has ever polled as this person"
            elif last_poll < m.created_at:
                why = f"no device has polled since (the last poll was {_ago(now, last_poll)})"
            else:
                why = "a device polled since; it takes the message on its next poll"
            lines.append(
                f"“{m.content.get('title') or m.id}” queued {_ago(now, m.created_at)}; {why}; "
                f"their devices poll every {interval_s} s"
            )
        elif m.state == "offered":
            lines.append(
                f"“{m.content.get('title') or m.id}” was offered to device {m.device_id} but not shown yet "
                "(the page may be hidden, or the inline element missing); if it is not shown before its "
                "lease ends, the next device to poll gets it"
            )
    if not lines:
        lines.append("nothing is waiting for this person: every message was shown, dismissed, expired or recalled")
    return lines


async def person_report(
    pool: asyncpg.Pool, workspace: Workspace, key: str, now: datetime, last_polls: DevicePolls | None = None
) -> PersonReport:
    """Everything the person page shows for the person whose id (or else email) is `key`.

    This process's last polls not yet written are written first, so the page is as fresh as this
    process knows; other processes' are at most one flush interval behind.
    """
    if last_polls is not None:
        await last_polls.flush()
    person = await storage.get_person(pool, workspace.id, key.strip())
    if person is None:
        raise NotFound("no person with this id or email in this workspace", code=ErrorCode.UNKNOWN_PERSON)
    messages = await storage.list_person_messages(pool, person.id, now=now)
    events = {m.id: await storage.list_message_events(pool, m.id) for m in messages}
    devices = await storage.list_person_devices(pool, person.id)
    intervals = Intervals(workspace.active_s, workspace.inactive_s, workspace.low_s, workspace.recent_days)
    tier, interval_s = _tier(messages, now, intervals)
    return PersonReport(person, messages, events, devices, tier, interval_s,
                        explain(messages, devices, now, interval_s))
