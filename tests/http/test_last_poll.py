"""The console's "last poll" of a device: noted in memory on every poll, written in batches."""

from __future__ import annotations

from datetime import timedelta

from gateway.core.clock import FixedClock
from gateway.http.keys import DEVICE_POLLS, POOL
from tests.helpers import Api
from tests.http.test_console import signed_in


async def rows(api: Api) -> int:
    count: int = await api.client.app[POOL].fetchval("SELECT count(*) FROM device_polls")
    return count


async def test_a_poll_writes_nothing_itself_and_the_flush_writes_the_latest_time(api: Api, clock: FixedClock) -> None:
    await api.identify("ada")
    for _ in range(3):
        assert (await api.poll("ada", "phone")).status == 200
        clock.advance(seconds=10)
    assert await rows(api) == 0  # no write on the poll path
    assert await api.client.app[DEVICE_POLLS].flush() == 1
    polled_at = await api.client.app[POOL].fetchval("SELECT polled_at FROM device_polls")
    assert polled_at == clock.now() - timedelta(seconds=10)


async def test_the_person_page_shows_the_last_poll_of_each_device(api: Api, clock: FixedClock) -> None:
    browser = await signed_in(api)
    await api.identify("ada")
    assert (await api.poll("ada", "laptop")).status == 200
    clock.advance(minutes=3)
    assert (await api.poll("ada", "phone")).status == 200
    clock.advance(minutes=2)
    # Not yet flushed by the timer: the page writes this process's pending polls before it reads.
    status, text = await browser.page("/console/people?q=ada")
    assert status == 200, text
    assert "laptop" in text and "phone" in text
    assert "5 min ago" in text and "2 min ago" in text
    assert len(api.client.app[DEVICE_POLLS]) == 0


async def test_a_poll_with_a_bad_body_notes_no_device(api: Api) -> None:
    await api.identify("ada")
    reply = await api.request("POST", "/v1/poll", json={"site_id": api.site_id, "user": "ada"}, auth=False)
    assert reply.status == 422
    assert len(api.client.app[DEVICE_POLLS]) == 0
