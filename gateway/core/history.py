"""What happened to a workspace's messages, for the console: pages of messages and broadcasts with
their state counts, and each broadcast's or campaign's delivery funnel over time.

Rules: lists are paged by a cursor (the last row's `created_at` and id), so a page never repeats
or skips a row while new messages arrive. A funnel counts events per time bucket and draws them
cumulatively; the bucket width is picked from the span so a chart has at most `MAX_BUCKETS`
points whether the broadcast is an hour or a month old. Recall and resend are not here: the
console calls `sends.recall_message` and `broadcasts.recall_broadcast` / `resend_broadcast`, as
the HTTP API does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

import storage
from storage import Broadcast, Campaign, Message

from ..errors import NotFound
from .broadcasts import get_broadcast

__all__ = [
    "FUNNEL_STEPS",
    "MAX_BUCKETS",
    "PAGE_SIZE",
    "BroadcastPage",
    "Cursor",
    "Funnel",
    "MessagePage",
    "broadcast_funnel",
    "broadcasts_page",
    "bucket_width",
    "campaign_funnel",
    "funnel_of",
    "messages_page",
]

PAGE_SIZE = 25
MAX_BUCKETS = 48
# The funnel's steps in the order a message moves through them (offered is a device's, not a step).
FUNNEL_STEPS = ("queued", "shown", "action", "dismissed", "expired", "recalled")
# Widths a bucket may take: round numbers a reader can tell apart on an axis.
_WIDTHS_S = (10, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)

Cursor = tuple[datetime, uuid.UUID]


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One page of messages, the workspace's counts by state, and the cursor of the next page (None: last)."""

    messages: list[Message]
    counts: dict[str, int]
    next: Cursor | None


@dataclass(frozen=True, slots=True)
class BroadcastPage:
    """A page of broadcasts with their titles by id, the next page's cursor, and the recent campaigns."""

    broadcasts: list[Broadcast]
    titles: dict[uuid.UUID, str]
    next: Cursor | None
    campaigns: list[Campaign]


@dataclass(frozen=True, slots=True)
class Funnel:
    """Totals per step, and for each bucket start the cumulative count of each step up to its end."""

    totals: dict[str, int]
    bucket_s: int
    points: list[tuple[datetime, dict[str, int]]]


async def messages_page(
    pool: asyncpg.Pool, workspace_id: int, now: datetime | None, *, state: str | None = None,
    before: Cursor | None = None, limit: int = PAGE_SIZE,
) -> MessagePage:
    rows = await storage.list_workspace_messages(pool, workspace_id, limit + 1, now, state, before)
    counts = await storage.count_workspace_messages(pool, workspace_id, now)
    page = rows[:limit]
    more = len(rows) > limit and page
    return MessagePage(page, counts, (page[-1].created_at, page[-1].id) if more else None)


async def broadcasts_page(
    pool: asyncpg.Pool, workspace_id: int, now: datetime | None, *, before: Cursor | None = None,
    limit: int = PAGE_SIZE, campaigns: int = PAGE_SIZE,
) -> BroadcastPage:
    """A page of broadcasts with live counts, and (on every page) the most recent campaigns."""
    ids = await storage.list_broadcast_ids(pool, workspace_id, limit + 1, before)
    found = [await get_broadcast(pool, workspace_id, i, now) for i in ids[:limit]]
    more = len(ids) > limit and found
    return BroadcastPage(
        found, await storage.list_broadcast_titles(pool, workspace_id, [b.id for b in found]),
        (found[-1].created_at, found[-1].id) if more else None,
        await storage.list_campaigns(pool, workspace_id, campaigns),
    )


def bucket_width(start: datetime, end: datetime) -> int:
    """The smallest round width (seconds) that covers start..end in at most MAX_BUCKETS buckets."""
    span = max(0.0, (end - start).total_seconds())
    for width in _WIDTHS_S:
        if span / width < MAX_BUCKETS:
            return width
    return int(span // MAX_BUCKETS) + 1


def funnel_of(
    counts: list[storage.FunnelCount], totals: dict[str, int], start: datetime, end: datetime, bucket_s: int
) -> Funnel:
    """Cumulative counts as steps: zero at the first bucket's start, then at each bucket's start the
    count including that bucket, and a last point at `end` holding every event counted."""
    epoch = int(start.timestamp()) // bucket_s * bucket_s
    first = datetime.fromtimestamp(epoch, start.tzinfo)
    steps = max(1, -(-int((end - first).total_seconds()) // bucket_s))
    running = dict.fromkeys(FUNNEL_STEPS, 0)
    by_bucket: dict[datetime, dict[str, int]] = {}
    for c in counts:
        if c.type in running:
            by_bucket.setdefault(c.bucket, {})[c.type] = c.count
    points = [(first, dict(running))]
    for i in range(steps):
        bucket = first + timedelta(seconds=i * bucket_s)
        for step, n in by_bucket.get(bucket, {}).items():
            running[step] += n
        points.append((bucket, dict(running)))
    # Whatever the database clock put outside start..end (another host's clock) still counts at the end.
    everything = {step: sum(kinds.get(step, 0) for kinds in by_bucket.values()) for step in FUNNEL_STEPS}
    points.append((max(end, points[-1][0]), everything))
    return Funnel(totals, bucket_s, points)


def _funnel_totals(counts: dict[str, int], total: int) -> dict[str, int]:
    """Every message counts as queued; the rest are the states (and actions) it reached."""
    return {"queued": total, **{s: counts.get(s, 0) for s in FUNNEL_STEPS if s != "queued"}}


async def broadcast_funnel(
    pool: asyncpg.Pool, workspace_id: int, broadcast_id: uuid.UUID, now: datetime | None, until: datetime
) -> tuple[Broadcast, str, Funnel]:
    """The broadcast with live counts and its title, and its funnel from its first send until `until`."""
    broadcast = await get_broadcast(pool, workspace_id, broadcast_id, now)
    title = (await storage.list_broadcast_titles(pool, workspace_id, [broadcast_id])).get(broadcast_id, "")
    width = bucket_width(broadcast.created_at, until)
    counts = await storage.count_funnel_events(pool, workspace_id, broadcast_id=broadcast_id, bucket_s=width)
    totals = _funnel_totals(broadcast.counts, broadcast.total)
    return broadcast, title, funnel_of(counts, totals, broadcast.created_at, until, width)


async def campaign_funnel(
    pool: asyncpg.Pool, workspace_id: int, campaign: str, now: datetime | None, until: datetime
) -> tuple[storage.CampaignCounts, Funnel]:
    """A campaign's counts (messages still held) and its funnel from its first message until `until`."""
    found = await storage.count_campaign_messages(pool, workspace_id, campaign, now)
    if found.first_sent_at is None:
        raise NotFound("no message of this workspace has this campaign (or retention has deleted them all)")
    width = bucket_width(found.first_sent_at, until)
    counts = await storage.count_funnel_events(pool, workspace_id, campaign=campaign, bucket_s=width)
    return found, funnel_of(counts, _funnel_totals(found.counts, found.total), found.first_sent_at, until, width)
