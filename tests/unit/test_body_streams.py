"""A body stream read to its end gives up its buffer (gateway/http/connections.py), and nothing else does."""

from __future__ import annotations

import asyncio
from unittest import mock

from aiohttp import StreamReader

from gateway.http.connections import _release_stream


def stream(*chunks: bytes, eof: bool) -> StreamReader:
    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


async def test_a_stream_read_to_its_end_gives_up_its_buffer_and_stays_at_its_end() -> None:
    reader = stream(b'{"site_id": ', b'"x"}', eof=True)
    assert await reader.read() == b'{"site_id": "x"}'

    _release_stream(reader)

    assert reader._buffer == ()
    assert reader.at_eof() and reader.is_eof()
    assert await reader.read() == b""


async def test_a_stream_not_yet_read_or_not_ended_keeps_its_buffer() -> None:
    unread = stream(b"body", eof=True)
    unfinished = stream(b"part", eof=False)

    _release_stream(unread)
    _release_stream(unfinished)

    assert await unread.read() == b"body"
    assert await unfinished.readany() == b"part"


def test_something_that_is_not_a_stream_is_left_alone() -> None:
    _release_stream(None)
    _release_stream(object())
