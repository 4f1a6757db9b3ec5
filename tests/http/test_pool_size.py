"""The serving pool opens every connection at start unless `pool_min` says otherwise
(docs/decisions/0036-connections-per-worker.md): in bench s7, connections opened during a burst
of woken polls (a fork, an authentication, the codecs) kept the polls waiting past the 2 s
acquire timeout.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway import Config, create_app
from gateway.http.keys import POOL


async def test_the_pool_opens_every_connection_at_start_by_default(config: Config, aiohttp_client: Any) -> None:
    """`pool_min` 0 (the default) is a fixed-size pool: a burst never waits for a new connection."""
    assert Config().pool_min == 0
    client = await aiohttp_client(create_app(dataclasses.replace(config, pool_min=0, pool_max=3)))
    pool = client.server.app[POOL]
    assert (pool.get_min_size(), pool.get_max_size(), pool.get_size()) == (3, 3, 3)


async def test_a_pool_min_that_is_set_is_kept(config: Config, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(config, pool_min=1, pool_max=3)))
    pool = client.server.app[POOL]
    assert (pool.get_min_size(), pool.get_max_size()) == (1, 3)
