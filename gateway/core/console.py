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
    "span_text",
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
    """A person's queue, devices and events, and the answer to "why didn't they see it?" in words.

    `tier` and `interval_s` are what a device polling now would be told; `device_tiers` what each
    device was told at its last poll, which is when it will next ask.
    """

    person: Person
    messages: list[Message]
    events: dict[uuid.UUID, list[storage.Event]]
    devices: list[DevicePoll]
    tier: Tier
    interval_s: int
    explanation: list[str]
    device_tiers: dict[str, tuple[Tier, int]]


# A device's recorded last poll can be a minute old (written at most once a minute) plus the
# quiet-poll cache's answers; beyond its interval and this much, the app is taken to be closed.
_POLL_SLACK_S = 120
# Messages that ended unseen (expired, recalled) are explained only when this recent.
_UNSEEN_WINDOW = timedelta(days=7)


def _ago(now: datetime, then: datetime) -> str:
    return span_text(int((now - then).total_seconds())) + " ago"


def span_text(seconds: int) -> str:
    """A length of time as the console's pages say it: "40 s", "5 min", "3 h", "1 day", "9 days"."""
    seconds = max(0, seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    days = seconds // 86400
    return f"{days} day" + ("" if days == 1 else "s")


def _tier(messages: list[Message], at: datetime, intervals: Intervals) -> tuple[Tier, int]:
    """The tier a poll at `at` was (or is) in, as the poll computes it (without jitter): only messages
    sent by then count, and one shown since was still waiting then."""
    sent = [m for m in messages if m.created_at <= at]
    if any(m.state in ("queued", "offered") or (m.shown_at is not None and m.shown_at > at) for m in sent):
        return "active", intervals.active_s
    latest = max((m.created_at for m in sent), default=None)
    if latest is not None and at - latest <= timedelta(days=intervals.recent_days):
        return "inactive", intervals.inactive_s
    return "low", intervals.low_s


def _title(m: Message) -> str:
    return f"“{m.content.get('title') or m.content.get('body') or m.id}”"


def _waiting(m: Message, devices: list[DevicePoll], now: datetime, workspace: Workspace,
             intervals: Intervals, messages: list[Message]) -> str:
    """Why a queued message has not been taken: which device polled when, and when one will next."""
    last = devices[0] if devices else None
    start = f"{_title(m)} queued {_ago(now, m.created_at)}; "
    if last is None:
        why = "no device has ever polled as this person, so nothing has asked for it"
        if workspace.identity_mode == "required":
            why += " (this workspace requires identity proof: a device without a valid user token is refused)"
        return start + why
    if last.polled_at >= m.created_at:
        return (start + f"device {last.device_id} polled {_ago(now, last.polled_at)}, after it was sent; "
                "it takes the message on its next poll")
    _, interval = _tier(messages, last.polled_at, intervals)
    why = (f"no device has polled since (the last poll was {_ago(now, last.polled_at)}, by {last.device_id}); "
           f"their devices poll every {interval} s")
    overdue = (now - last.polled_at).total_seconds() > interval + _POLL_SLACK_S
    if overdue:
        why += (", so no device has the app open now; it waits until one does "
                f"(it expires in {span_text(int((m.expires_at - now).total_seconds()))})")
    else:
        due = interval - int((now - last.polled_at).total_seconds())
        why += f", so the next poll is due in about {span_text(due)}" if due > 0 else ", so the next poll is due now"
    return start + why


def explain(messages: list[Message], devices: list[DevicePoll], now: datetime, workspace: Workspace) -> list[str]:
    """One sentence per message that has not been seen, saying why, from the stored facts alone."""
    intervals = Intervals(workspace.active_s, workspace.inactive_s, workspace.low_s, workspace.recent_days)
    lines = []
    if not workspace.in_app_enabled:
        lines.append("in-app messaging is off for this workspace: nothing is delivered and new sends are "
                     "refused until it is enabled on In-App settings")
    for m in messages:
        if m.state == "queued":
            lines.append(_waiting(m, devices, now, workspace, intervals, messages))
        elif m.state == "offered":
            lease = "" if m.lease_expires_at is None else (
                f" (its lease ends in {span_text(int((m.lease_expires_at - now).total_seconds()))})")
            lines.append(
                f"{_title(m)} was offered to device {m.device_id} but not shown yet: the page may be hidden, "
                f"or the inline element missing; if it is not shown before its lease ends{lease}, the next "
                "device to poll gets it"
            )
        elif m.state in ("expired", "recalled") and m.shown_at is None and now - m.created_at <= _UNSEEN_WINDOW:
            how = ("expired before any device showed it" if m.state == "expired"
                   else "was recalled before any device showed it")
            lines.append(f"{_title(m)}, sent {_ago(now, m.created_at)}, {how}")
    if not lines:
        seen = next((m for m in messages if m.shown_at is not None), None)
        if seen is not None and seen.shown_at is not None:
            lines.append(f"nothing is waiting for this person: the latest message they saw, {_title(seen)}, "
                         f"was shown on {seen.device_id} {_ago(now, seen.shown_at)}")
        elif not messages:
            lines.append("nothing is waiting for this person: no message has been sent to them yet")
        else:
            lines.append("nothing is waiting for this person: every message was shown, dismissed, expired or "
                         "recalled")
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
    device_tiers = {d.device_id: _tier(messages, d.polled_at, intervals) for d in devices}
    return PersonReport(person, messages, events, devices, tier, interval_s,
                        explain(messages, devices, now, workspace), device_tiers)
