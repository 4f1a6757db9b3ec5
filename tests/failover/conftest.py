"""The failover drill: a Patroni cluster from deploy/local-cluster, two gateways, devices and a backend.

Marked `failover` and left out of the default run (pyproject's addopts); `make failover` runs
it. What clients saw in each case, and how long the database took to change primaries, is
printed as a table at the end of the run.
"""

from __future__ import annotations

import pytest

RESULTS = pytest.StashKey[list[dict[str, object]]]()


@pytest.fixture(scope="session")
def failover_results(request: pytest.FixtureRequest) -> list[dict[str, object]]:
    """One row per case: the fault and what the clients saw; printed as a table at the end."""
    return request.config.stash.setdefault(RESULTS, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    rows = config.stash.get(RESULTS, [])
    if not rows:
        return
    terminalreporter.section("failover: what a client saw")
    terminalreporter.write_line(
        "| fault | new primary after, s | sends acknowledged | requests | 503 | connection errors "
        "| longest gap without an acknowledged send, s | slowest send, s | lost | shown twice | tracebacks logged |"
    )
    terminalreporter.write_line("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        terminalreporter.write_line(
            f"| {row['fault']} | {row['failover_s']:.1f} | {row['sends']} | {row['requests']} | {row['503']} "
            f"| {row['connection']} | {row['outage_s']:.1f} | {row['slowest_send_s']:.1f} | {row['lost']} "
            f"| {row['shown_twice']} | {row['tracebacks']} |"
        )
