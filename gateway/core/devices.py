"""What a device does: name its workspace and prove who it is, poll, and report what the person
did with a message (on its own, or carried by the next poll)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

import storage
from storage import DeviceReport, Workspace

from ..errors import ErrorCode, Unauthorized
from .device_polls import DevicePolls
from .identity import check_identity
from .poll import Poll, PollAnswer, Poller
from .ratelimits import RateLimiter
from .workspaces import WorkspaceCache

__all__ = ["Rejection", "device_workspace", "ended", "poll", "report_events"]


async def device_workspace(
    cache: WorkspaceCache, site_id: str, user: str | None, user_hash: str | None, user_token: str | None = None,
    limiter: RateLimiter | None = None, *, events: int = 0, now: datetime | None = None,
    anonymous_id: str | None = None,
) -> Workspace:
    """The workspace of a public site id, after the identity proof its mode asks for (at `now`)
    and the site's and person's rate limits (`events`: how many events the request writes).

    The limits come after the proof, so that under `required` proof no one can use up another
    person's allowance. An anonymous visitor (`user` None, `anonymous_id` given) needs no proof
    in any mode: it can only ever reach its own visitor's messages (decision 0023).
    """
    workspace = await cache.by_site_id(site_id)
    if workspace is None:
        raise Unauthorized(
            "no workspace has this `site_id`: copy it from what `mailslot workspace create` printed "
            "(for the demo workspace, `site_id` in .mailslot/demo-workspace.json)",
            code=ErrorCode.UNKNOWN_SITE,
        )
    if user is not None:
        check_identity(workspace, user, user_hash, user_token, now=now)
    if limiter is not None:
        limiter.check_device(workspace, user if user is not None else "\x00" + (anonymous_id or ""), events=events)
    return workspace


@dataclass(frozen=True, slots=True)
class Rejection:
    """A report that was not recorded, and why (an `EventRejection` code)."""

    report: DeviceReport
    code: str


async def report_events(
    pool: asyncpg.Pool, workspace_id: int, user: str | None, device_id: str, reports: list[DeviceReport], *,
    platform: str, now: datetime | None, anonymous_id: str | None = None,
) -> list[Rejection]:
    """Record shown / action / dismissed reports; the same report twice is recorded once."""
    results = await storage.record_device_events(
        pool, workspace_id, user, device_id, reports, now=now, platform=platform, anonymous_id=anonymous_id,
    )
    return [Rejection(report, code) for report, code in zip(reports, results, strict=True) if code is not None]


def poll(
    poller: Poller, last_polls: DevicePolls, workspace: Workspace, user: str | None, device_id: str, *,
    wait_s: float, anonymous_id: str | None = None, reports: Sequence[DeviceReport] = (),
    rejections: Sequence[Rejection] = (),
) -> Awaitable[PollAnswer]:
    """The claim (held for up to `wait_s`), after the reports the poll carried (`reports`) were
    applied with `report_events` (acknowledge on the next poll), which refused `rejections`.

    The reports go first, so a `shown` message is the device's for good before the claim looks at
    what the device holds; the answer still carries any new message. Two statements, not one: in
    one statement the claim would read the reported messages as they were before the report.
    When the accepted reports end every offer of the device's last claim and that claim saw
    nothing else pending, memory learns that the person is quiet and the poll needs no claim at
    all (decision 0045).
    Not a coroutine itself: it hands back the poller's, because a held poll keeps every frame
    above its wait alive (docs/decisions/0029-held-poll-memory.md).
    """
    if user is not None:  # an anonymous visitor has no person page to show it on
        last_polls.record(workspace.id, user, device_id)
    if reports:
        poller.acknowledged(workspace, Poll(user, device_id, anonymous_id), ended(reports, rejections))
    return poller.poll(workspace, user, device_id, wait_s=wait_s, anonymous_id=anonymous_id)


def ended(reports: Sequence[DeviceReport], rejections: Sequence[Rejection]) -> set[uuid.UUID]:
    """The messages these reports left shown or dismissed for good: an accepted `shown` or
    `dismissed` (record_device_events moves an offer to that state), and no report of it refused."""
    refused = {rejection.report.message_id for rejection in rejections}
    return {r.message_id for r in reports if r.type != "action" and r.message_id not in refused}
