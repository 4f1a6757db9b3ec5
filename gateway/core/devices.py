"""What a device does: name its workspace and prove who it is, poll, and report what the person
did with a message (on its own, or carried by the next poll)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

import storage
from storage import DeviceReport, Workspace

from ..errors import ErrorCode, Unauthorized
from .device_polls import DevicePolls
from .identity import check_identity
from .poll import PollAnswer, Poller
from .ratelimits import RateLimiter
from .workspaces import WorkspaceCache

__all__ = ["Rejection", "device_workspace", "poll", "report_events"]


async def device_workspace(
    cache: WorkspaceCache, site_id: str, user: str, user_hash: str | None, user_token: str | None = None,
    limiter: RateLimiter | None = None, *, events: int = 0, now: datetime | None = None,
) -> Workspace:
    """The workspace of a public site id, after the identity proof its mode asks for (at `now`)
    and the site's and person's rate limits (`events`: how many events the request writes).

    The limits come after the proof, so that under `required` proof no one can use up another
    person's allowance.
    """
    workspace = await cache.by_site_id(site_id)
    if workspace is None:
        raise Unauthorized(
            "no workspace has this `site_id`: copy it from what `mailslot workspace create` printed "
            "(for the demo workspace, `site_id` in .mailslot/demo-workspace.json)",
            code=ErrorCode.UNKNOWN_SITE,
        )
    check_identity(workspace, user, user_hash, user_token, now=now)
    if limiter is not None:
        limiter.check_device(workspace, user, events=events)
    return workspace


@dataclass(frozen=True, slots=True)
class Rejection:
    """A report that was not recorded, and why (an `EventRejection` code)."""

    report: DeviceReport
    code: str


async def report_events(
    pool: asyncpg.Pool, workspace_id: int, user: str, device_id: str, reports: list[DeviceReport], *,
    platform: str, now: datetime | None,
) -> list[Rejection]:
    """Record shown / action / dismissed reports; the same report twice is recorded once."""
    results = await storage.record_device_events(
        pool, workspace_id, user, device_id, reports, now=now, platform=platform,
    )
    return [Rejection(report, code) for report, code in zip(reports, results, strict=True) if code is not None]


async def poll(
    poller: Poller, pool: asyncpg.Pool, last_polls: DevicePolls, workspace: Workspace, user: str, device_id: str, *,
    reports: list[DeviceReport], platform: str, wait_s: float, now: datetime | None,
) -> tuple[PollAnswer, list[Rejection]]:
    """A poll that first applies the reports it carries (acknowledge on the next poll), then claims.

    The reports go first, so a `shown` message is the device's for good before the claim looks at
    what the device holds; the answer still carries any new message. Two statements, not one: in
    one statement the claim would read the reported messages as they were before the report.
    """
    rejections = (
        await report_events(pool, workspace.id, user, device_id, reports, platform=platform, now=now)
        if reports else []
    )
    last_polls.record(workspace.id, user, device_id)
    answer = await poller.poll(workspace, user, device_id, wait_s=wait_s)
    return answer, rejections
