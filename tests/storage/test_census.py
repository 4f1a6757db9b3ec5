"""Who the census names (decision 0028's rule), now that each reason is read from an index (0035).

A person is named for a message queued or offered (even past expires_at, until the sweep records
it), a persistent message on display, or a message sent within the workspace's recent window
(inclusive, as the tier's rule), counting the latest message retention folded into
`people.last_message_at`. Everyone else is answered `low` from memory, so a person wrongly left
out would lose the `inactive` tier, and one left out with a message pending would not get it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

import storage

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


async def person(pool: asyncpg.Pool, workspace_id: int, name: str, last_message_at: datetime | None = None) -> int:
    person_id: int = await pool.fetchval(
        "INSERT INTO people (workspace_id, external_id, last_message_at) VALUES ($1, $2, $3) RETURNING id",
        workspace_id, name, last_message_at,
    )
    return person_id


async def message(
    pool: asyncpg.Pool, workspace_id: int, person_id: int, state: str, created_at: datetime, *,
    persistent: bool = False, expires_in: timedelta = 30 * DAY, closed_after: timedelta | None = None,
) -> None:
    closed_at = created_at + closed_after if closed_after is not None else None
    await pool.execute(
        """
        INSERT INTO messages (workspace_id, person_id, state, content, persistent, device_id, created_at,
                              expires_at, shown_at, closed_at)
        VALUES ($1, $2, $3::text, '{}', $4, CASE WHEN $3::text <> 'queued' THEN 'd' END, $5::timestamptz, $6,
                CASE WHEN $3::text IN ('shown', 'dismissed') THEN $5::timestamptz END, $7)
        """,
        workspace_id, person_id, state, persistent, created_at, created_at + expires_in, closed_at,
    )


async def test_the_census_names_exactly_the_people_its_rule_names(pool: asyncpg.Pool) -> None:
    wide = (await storage.create_workspace(pool, "wide")).workspace.id  # recent_days 30
    narrow = (await storage.create_workspace(pool, "narrow")).workspace.id
    await pool.execute("UPDATE workspaces SET recent_days = 7 WHERE id = $1", narrow)
    named: set[tuple[int, str]] = set()

    async def expect(workspace_id: int, name: str, is_named: bool, *, last: datetime | None = None) -> int:
        if is_named:
            named.add((workspace_id, name))
        return await person(pool, workspace_id, name, last)

    for ws, days in ((wide, 30), (narrow, 7)):
        edge = NOW - days * DAY
        # Nothing at all, or only the long past.
        await expect(ws, "never", False)
        old = await expect(ws, "old-dismissed", False)
        await message(pool, ws, old, "dismissed", edge - timedelta(seconds=1), closed_after=timedelta(seconds=1))
        old_shown = await expect(ws, "old-shown", False)
        await message(pool, ws, old_shown, "shown", edge - 5 * DAY)
        await expect(ws, "old-folded", False, last=edge - timedelta(seconds=1))
        # Within the window, its first instant included.
        at_edge = await expect(ws, "edge-dismissed", True)
        await message(pool, ws, at_edge, "dismissed", edge, closed_after=timedelta(0))
        recalled = await expect(ws, "recent-recalled", True)
        await message(pool, ws, recalled, "recalled", NOW - DAY, closed_after=timedelta(minutes=1))
        expired = await expect(ws, "recent-expired", True)
        await message(pool, ws, expired, "expired", NOW - 2 * DAY, expires_in=DAY, closed_after=2 * DAY)
        shown = await expect(ws, "recent-shown", True)  # no action yet: final from its expiry
        await message(pool, ws, shown, "shown", NOW - DAY)
        await expect(ws, "folded-at-edge", True, last=edge)
        await expect(ws, "folded-recent", True, last=NOW - DAY)
        # Pending or on display, however old.
        queued = await expect(ws, "old-queued", True)
        await message(pool, ws, queued, "queued", edge - 50 * DAY, expires_in=100 * DAY)
        late = await expect(ws, "queued-past-expiry", True)
        await message(pool, ws, late, "queued", edge - 50 * DAY, expires_in=DAY)
        offered = await expect(ws, "old-offered", True)
        await message(pool, ws, offered, "offered", edge - 50 * DAY, expires_in=100 * DAY)
        banner = await expect(ws, "old-banner", True)
        await message(pool, ws, banner, "shown", edge - 50 * DAY, persistent=True, expires_in=100 * DAY)
        # Several reasons at once: named once.
        busy = await expect(ws, "busy", True, last=NOW - DAY)
        for state in ("queued", "offered", "dismissed"):
            await message(pool, ws, busy, state, NOW - DAY, closed_after=timedelta(minutes=1))
        await message(pool, ws, busy, "shown", NOW - DAY, persistent=True)
    # Eight days ago is within the wide window, not the narrow one.
    for ws, is_named in ((wide, True), (narrow, False)):
        eight = await expect(ws, "eight-days", is_named)
        await message(pool, ws, eight, "dismissed", NOW - 8 * DAY, closed_after=timedelta(minutes=1))

    census = await storage.list_unsettled_people(pool, now=NOW, limit=1000)
    got = [(workspace_id, external_id) for workspace_id, external_id, _, _ in census.people]
    assert sorted(got) == sorted(named)  # each once
    assert census.complete

    cut = await storage.list_unsettled_people(pool, now=NOW, limit=len(named) - 1)
    assert not cut.complete
    assert len(cut.people) == len(named) - 1
