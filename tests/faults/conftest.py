"""Fault cases: each runs `mailslot serve` in subprocesses against its own PostgreSQL under load.

They are marked `faults` and left out of the default run (pyproject's addopts); `make faults`
runs them. The table of what clients saw in each case is printed at the end of the run.
"""

from __future__ import annotations

import pytest

RESULTS = pytest.StashKey[list[dict[str, object]]]()


@pytest.fixture(scope="session")
def fault_results(request: pytest.FixtureRequest) -> list[dict[str, object]]:
    """One row per case: the fault and what the clients saw; printed as a table at the end."""
    return request.config.stash.setdefault(RESULTS, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    rows = config.stash.get(RESULTS, [])
    if not rows:
        return
    terminalreporter.section("faults: what a client saw")
    terminalreporter.write_line(
        "| fault | sends acknowledged | requests | 503 | connection errors | longest gap without an "
        "acknowledged send, s | slowest send, s | lost | shown twice | tracebacks logged |"
    )
    terminalreporter.write_line("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        terminalreporter.write_line(
            f"| {row['fault']} | {row['sends']} | {row['requests']} | {row['503']} | {row['connection']} "
            f"| {row['outage_s']:.1f} | {row['slowest_send_s']:.1f} | {row['lost']} | {row['shown_twice']} "
            f"| {row['tracebacks']} |"
        )
