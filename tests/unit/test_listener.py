"""The listener hands parsed notices on and survives bad payloads and failing handlers."""

from __future__ import annotations

import logging

import pytest

from storage.listener import Listener
from storage.notices import NOTIFY_CHANNEL, Notice, QueueNotice, WorkspaceNotice

LOGGER = "mailslot.storage.listener"


def test_the_listener_hands_on_good_notices_and_survives_bad_ones_and_handler_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[Notice] = []

    def on_notice(notice: Notice) -> None:
        received.append(notice)
        if isinstance(notice, WorkspaceNotice):
            raise RuntimeError("handler bug")

    listener = Listener("postgresql://unused", on_notice, lambda: None)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        listener._dispatch(None, 1, NOTIFY_CHANNEL, "garbage")
        listener._dispatch(None, 1, NOTIFY_CHANNEL, '{"type": "workspace", "workspace": 4}')
        listener._dispatch(None, 1, NOTIFY_CHANNEL, '{"type": "queued", "workspace": 4, "person": 1, "keys": ["u"]}')

    assert received == [WorkspaceNotice(4), QueueNotice(4, 1, ("u",), None)]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "malformed notification" in messages[0]
    assert "handler failed" in messages[1]


async def test_a_barrier_marker_is_refused_while_the_listener_is_not_connected() -> None:
    listener = Listener("postgresql://unused", lambda notice: None, lambda: None, barrier_channel="b")

    with pytest.raises(ConnectionError):
        await listener.notify_barrier("1")
