"""Fixtures of the HTTP tests' own."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest


@pytest.fixture
async def listening() -> AsyncIterator[socket.socket]:
    """A listening socket that several workers (tests/http/workers.py) share, as `serve`'s do."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    yield sock
    sock.close()
