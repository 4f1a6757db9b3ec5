"""The bench at smoke size: every scenario runs end to end and counts no duplicate and no lost message.

One run of every scenario is shared by the module (it starts servers, which takes most of
its time). These tests check correctness counters and the report's shape, never timings. nginx
with nchan is required, not optional: `make test` installs it, so its absence is a failure.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.cli import run
from bench.nchan import find_nginx
from bench.settings import Settings
from tests.conftest import database_url_for

# The first test also runs the module's shared bench run: seven scenarios, each starting its
# servers and load-generator processes, take longer than the suite's per-test timeout on a busy host.
pytestmark = pytest.mark.timeout(360)

SMOKE = dict(
    # No wait for PostgreSQL's statistics (11 s each in s3 and s7): nothing here reads the database figures.
    workers=2, loadgen_processes=2, durable=False, stats_flush_s=0.0,
    s1_people=40, s1_connections=4, s1_seconds=1.0, s1_warmup_s=0.2,
    s2_people=20, s2_messages=12, s2_devices=3, s2_concurrency=4,
    s3_polls=20, s3_rate=20.0, s3_seconds=1.0, s3_workers=1,
    s4_people=200, s4_parked=10, s4_chunk=100,
    s5_subscribers=10, s5_rate=20.0,
    s6_people=15, s6_rounds=4, s6_connections=3, s6_retention_interval_s=1,
    s8_people=20, s8_concurrency=4, s8_seconds=0.5, s8_batch=5,
    s7_polls=30, s7_rate=20.0, s7_seconds=1.0, s7_workers=2,
)


@pytest.fixture(scope="module")
def bench_run(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Every scenario at smoke size against a fresh database of the session's server."""
    name = "bench_" + uuid.uuid4().hex[:12]

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(create())
    settings = Settings(database_url=database_url_for(server_url, name),
                        results_dir=tmp_path_factory.mktemp("bench-results"), **SMOKE)  # type: ignore[arg-type]
    return run(settings, command="pytest tests/bench")


def scenario(bench_run: tuple[dict[str, Any], Path], key: str) -> dict[str, Any]:
    entry: dict[str, Any] = bench_run[0]["scenarios"][key]
    assert entry["status"] == "ok", entry
    return entry


def test_report_has_every_figure_the_machine_and_the_command(bench_run: tuple[dict[str, Any], Path]) -> None:
    _, folder = bench_run
    saved = json.loads((folder / "result.json").read_text())
    assert set(saved) >= {"started_at", "command", "commit", "machine", "settings", "scenarios", "targets"}
    assert set(saved["machine"]) >= {"cores", "memory_bytes", "python", "postgresql", "nginx"}
    assert saved["machine"]["postgresql"].startswith("PostgreSQL")
    assert set(saved["scenarios"]) == {"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"}
    assert {v["scenario"] for v in saved["targets"]} == {"s1", "s2", "s3", "s4", "s6", "s7", "s8"}
    markdown = (folder / "report.md").read_text()
    assert "| Scenario | Figure | mailslot | Ceiling / peer | Ratio | Target |" in markdown
    assert "pytest tests/bench" in markdown
    assert importlib.util.find_spec("matplotlib") is not None, "the plot needs matplotlib: pip install -e '.[bench]'"
    assert (folder / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![latency distributions](latency.png)" in markdown


def test_empty_short_polls_against_the_ceiling(bench_run: tuple[dict[str, Any], Path]) -> None:
    s1 = scenario(bench_run, "s1")
    assert s1["gateway"]["polls"] > 0 and s1["ceiling"]["polls"] > 0
    assert s1["gateway"]["errors"] == {} and s1["ceiling"]["errors"] == {}
    assert s1["ratio"] is not None
    assert (s1["duplicates"], s1["lost"]) == (0, 0)


def test_claim_race_delivers_each_message_to_one_device_once(bench_run: tuple[dict[str, Any], Path]) -> None:
    s2 = scenario(bench_run, "s2")
    for side in ("gateway", "ceiling"):
        figures = s2[side]
        assert figures["expected"] == SMOKE["s2_people"] * SMOKE["s2_messages"]
        assert (figures["duplicates"], figures["lost"], figures["delivered"]) == (0, 0, figures["expected"])
        assert figures["errors"] == {}
    assert s2["gateway"]["left_queued"] == 0


def test_held_polls_get_every_sent_message(bench_run: tuple[dict[str, Any], Path]) -> None:
    s3 = scenario(bench_run, "s3")
    assert s3["held"] == s3["target_held"] == SMOKE["s3_polls"]
    assert s3["sent"] == s3["due"] > 0
    assert (s3["duplicates"], s3["lost"], s3["late"], s3["delivered"]) == (0, 0, 0, s3["sent"])
    assert s3["send_to_receive"]["count"] == s3["sent"]
    assert s3["rss_per_held_poll_bytes"] is not None
    assert "kernel_tcp_buffers_per_held_poll_bytes" in s3


def test_many_held_polls_are_all_held_with_no_error_and_report_memory_and_p99(
    bench_run: tuple[dict[str, Any], Path],
) -> None:
    s7 = scenario(bench_run, "s7")
    assert s7["held"] == s7["target_held"] == SMOKE["s7_polls"]
    assert s7["workers"] == SMOKE["s7_workers"]
    assert s7["errors"] == {}
    assert s7["sent"] == s7["due"] > 0
    assert (s7["duplicates"], s7["lost"], s7["late"], s7["delivered"]) == (0, 0, 0, s7["sent"])
    assert s7["rss_per_held_poll_bytes"] is not None
    assert s7["send_to_receive"]["count"] == s7["sent"] and s7["send_to_receive"]["p99_ms"] is not None
    verdict = next(v for v in bench_run[0]["targets"] if v["scenario"] == "s7")
    assert verdict["hit"] is True and verdict["value"] == 1.0
    markdown = (bench_run[1] / "report.md").read_text()
    assert "held long polls of those asked" in markdown


def test_broadcast_reaches_the_whole_audience_and_each_parked_person_once(
    bench_run: tuple[dict[str, Any], Path],
) -> None:
    s4 = scenario(bench_run, "s4")
    assert s4["broadcast_failure"] is None
    assert s4["queued"] == SMOKE["s4_people"]
    assert s4["parked_devices"] == SMOKE["s4_parked"]
    assert s4["delivered"] == SMOKE["s4_parked"] // 2
    assert (s4["duplicates"], s4["lost"]) == (0, 0)


def test_nchan_peer_runs_beside_held_polls(bench_run: tuple[dict[str, Any], Path]) -> None:
    if find_nginx() is None:
        pytest.fail("nginx with the nchan module is not installed: apt-get install -y nginx-light "
                    "libnginx-mod-nchan (make test installs it)")
    s5 = scenario(bench_run, "s5")
    assert s5["held"] == SMOKE["s5_subscribers"]
    assert s5["published"] == SMOKE["s5_subscribers"]
    assert (s5["duplicates"], s5["lost"]) == (0, 0)


def test_retention_keeps_one_round_of_rows_while_every_message_is_delivered_once(
    bench_run: tuple[dict[str, Any], Path],
) -> None:
    s6 = scenario(bench_run, "s6")
    people, rounds = SMOKE["s6_people"], SMOKE["s6_rounds"]
    assert [r["round"] for r in s6["rounds"]] == list(range(1, rounds + 1))
    assert [r["sent"] for r in s6["rounds"]] == [people * n for n in range(1, rounds + 1)]
    assert s6["sent"] == s6["delivered"] == people * rounds
    assert (s6["duplicates"], s6["lost"], s6["errors"]) == (0, 0, {})
    # Each round's sweep took the previous round: only this round's messages and their events are left
    # (offered, shown, dismissed: three event rows each; a broadcast entry's `queued` event is its
    # created_at, decision 0022).
    assert [r["messages"] for r in s6["rounds"]] == [people] * rounds
    assert [r["events"] for r in s6["rounds"]] == [3 * people] * rounds
    assert s6["messages_rows_in_rounds"] == 1.0
    assert s6["messages_rows_ratio_last_half"] == 1.0
    markdown = (bench_run[1] / "report.md").read_text()
    assert "message rows after each round" in markdown


def test_sends_single_and_batched_are_each_stored_once_on_both_sides(bench_run: tuple[dict[str, Any], Path]) -> None:
    s8 = scenario(bench_run, "s8")
    assert s8["batch_size"] == SMOKE["s8_batch"]
    for mode in ("single", "batch"):
        for side in ("gateway", "ceiling"):
            figures = s8[mode][side]
            assert figures["messages"] > 0, (mode, side, figures)
            assert (figures["duplicates"], figures["lost"], figures["errors"]) == (0, 0, {}), (mode, side, figures)
        assert s8[mode]["ratio"] is not None
    # A batch request carries `s8_batch` messages, each answered with its own id.
    gateway_batch = s8["batch"]["gateway"]
    assert gateway_batch["messages"] == gateway_batch["requests"] * SMOKE["s8_batch"]
    assert s8["ratio"] == s8["single"]["ratio"]
    assert (s8["duplicates"], s8["lost"]) == (0, 0)
    markdown = (bench_run[1] / "report.md").read_text()
    assert f"batches of {SMOKE['s8_batch']}" in markdown
