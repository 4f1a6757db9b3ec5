"""The failover drill: PostgreSQL changes primaries under load, and the gateways follow.

One two-node Patroni cluster (deploy/local-cluster: etcd, synchronous replication, HAProxy) for
the module; two `mailslot serve` processes, one on the multi-host URL
(`target_session_attrs=read-write`), one through HAProxy's primary-only port; devices holding
polls and a backend sending with `Idempotency-Key`, all through HAProxy in front of both
gateways. Each case injects one failover while the load runs: the primary's postmaster killed,
a clean switchover, a whole node killed (Patroni and PostgreSQL at once). The checks are the
fault suite's (tests/faults): every acknowledged send is shown, accepted on exactly one device;
no answer is a 500; the longest time the backend went without an acknowledged send is printed
and bounded generously (a hang, not a speed). How long Patroni took to name a new primary is
printed beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.failover.cluster import Cluster
from tests.faults.cluster import START_BOUND_S, Gateway, status_of, until
from tests.faults.load import Load
from tests.faults.test_faults import create_workspace, run_case

pytestmark = [pytest.mark.failover, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    try:
        yield made
    finally:
        made.down()


@pytest.fixture(scope="module")
def gateways(cluster: Cluster) -> Iterator[list[Gateway]]:
    """A on the multi-host URL, B through HAProxy's primary port; both behind HAProxy for clients."""
    ports = cluster.env["ports"]["gateways"]
    started = [
        Gateway(cluster.folder, cluster.env["database_url"], port=ports[0]),
        Gateway(cluster.folder, cluster.env["haproxy_database_url"], port=ports[1]),
    ]
    try:
        for gateway in started:
            gateway.start()
        until(lambda: status_of(cluster.env["gateways_url"] + "/readyz") == 200, "HAProxy has a gateway in rotation",
              START_BOUND_S, cluster.logs)
        yield started
    finally:
        for gateway in started:
            gateway.kill()


def kill_postmaster(cluster: Cluster, measured: dict[str, float]) -> Callable[[Load], Awaitable[None]]:
    """SIGKILL the primary's postmaster: Patroni (primary_start_timeout: 0) promotes the standby."""
    async def fault(load: Load) -> None:
        old = cluster.leader()
        assert old is not None
        await asyncio.to_thread(cluster.run, "kill-postmaster", old)
        measured["failover_s"] = await asyncio.to_thread(cluster.wait_new_leader, old)
    return fault


def switchover(cluster: Cluster, measured: dict[str, float]) -> Callable[[Load], Awaitable[None]]:
    """A planned switchover to the synchronous standby, through Patroni's REST API."""
    async def fault(load: Load) -> None:
        old = cluster.leader()
        assert old is not None
        started = asyncio.get_running_loop().time()
        await asyncio.to_thread(cluster.run, "switchover")
        await asyncio.to_thread(cluster.wait_new_leader, old)
        measured["failover_s"] = asyncio.get_running_loop().time() - started
    return fault


def kill_node(cluster: Cluster, measured: dict[str, float]) -> Callable[[Load], Awaitable[None]]:
    """SIGKILL the primary's Patroni, postmaster and backends at once; the node comes back afterwards."""
    async def fault(load: Load) -> None:
        old = cluster.leader()
        assert old is not None
        await asyncio.to_thread(cluster.run, "kill-node", old)
        measured["failover_s"] = await asyncio.to_thread(cluster.wait_new_leader, old)
        await asyncio.to_thread(cluster.run, "start-node", old)
    return fault


CASES: dict[str, Callable[[Cluster, dict[str, float]], Callable[[Load], Awaitable[None]]]] = {
    "primary postmaster killed": kill_postmaster,
    "switchover": switchover,
    "primary node killed": kill_node,
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_failover_under_load_loses_nothing_and_shows_nothing_twice(
    case: str, cluster: Cluster, gateways: list[Gateway], failover_results: list[dict[str, Any]],
) -> None:
    # Each case starts from a healthy pair: the previous case's old primary has rejoined as the
    # synchronous standby, so an acknowledged send is on both nodes again.
    await asyncio.to_thread(cluster.wait_healthy)
    database_url = cluster.env["database_url"]
    credentials = await create_workspace(database_url)
    measured: dict[str, float] = {}
    rows = len(failover_results)
    try:
        await run_case(case, cluster.env["gateways_url"], database_url, credentials,
                       CASES[case](cluster, measured), failover_results, gateways, people=50)
    finally:
        if len(failover_results) > rows:
            failover_results[-1]["failover_s"] = measured.get("failover_s", float("nan"))
    for gateway in gateways:
        assert "unhandled error" not in gateway.output(), gateway.output()[-6000:]
