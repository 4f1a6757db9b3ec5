"""`python -m bench`: run the scenarios, show progress, write the JSON result, the report and the plot.

Order of a run: an embedded PostgreSQL in a temporary folder (or `--database-url`), guarded by
`bench.watchdog`; then each chosen scenario's setup, run and teardown, a failure or skip being
recorded and the next scenario run anyway; then the report in a new folder under
`--results-dir`. Whatever was started is stopped on the way out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from .harness import Database
from .machine import git_commit, machine_info
from .nchan import nginx_version
from .progress import say
from .report import curves, write_report
from .scenarios import SCENARIOS, Context, Skip
from .settings import Settings, add_arguments, settings_from
from .targets import evaluate

__all__ = ["main", "run"]

REPO = Path(__file__).resolve().parents[1]
NOTES_MARKER = "<!-- notes: kept by `python -m bench --publish true` -->"
WATCHDOG_SECONDS = 3 * 3600


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run_scenario(number: int, context: Context) -> tuple[dict[str, Any], dict[str, list[float]]]:
    scenario = SCENARIOS[number](context)
    started = time.monotonic()
    say(scenario.key, f"{scenario.title}: setting up")
    entry: dict[str, Any]
    try:
        scenario.setup()
        say(scenario.key, "running")
        entry = {"status": "ok", "title": scenario.title, **scenario.run()}
    except Skip as exc:
        entry = {"status": "skipped", "title": scenario.title, "reason": f"skipped: {exc}"}
    except Exception as exc:
        traceback.print_exc()
        entry = {"status": "failed", "title": scenario.title, "reason": f"{type(exc).__name__}: {exc}"[:2000]}
    finally:
        try:
            scenario.teardown()
        except Exception:
            traceback.print_exc()
    entry["seconds"] = round(time.monotonic() - started, 1)
    entry["latency_percentiles_ms"] = curves(scenario.samples)
    say(scenario.key, f"{entry['status']} in {entry['seconds']:.0f}s" + (
        f": {entry['reason']}" if entry["status"] != "ok" else ""))
    return entry, scenario.samples


def _keep_logs(work_dir: Path, folder: Path) -> None:
    """Server logs of the run (gateway, ceiling, nginx, PostgreSQL) next to its result."""
    logs = folder / "logs"
    for path in work_dir.rglob("*.log"):
        logs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, logs / f"{path.parent.name}-{path.name}")


def run(settings: Settings, *, command: str | None = None) -> tuple[dict[str, Any], Path]:
    """Run the chosen scenarios; returns the result and the folder the report was written to."""
    started = datetime.datetime.now(datetime.UTC)
    begun = time.monotonic()
    commit = git_commit(REPO)
    folder = settings.results_dir / f"{started:%Y%m%d-%H%M%S}-{commit[:8]}"
    work_dir = Path(tempfile.mkdtemp(prefix="mailslot-bench-"))
    work_dir.chmod(0o755)
    database = Database(work_dir, settings.database_url, durable=settings.durable)
    watchdog: subprocess.Popen[bytes] | None = None
    scenarios: dict[str, dict[str, Any]] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not settings.database_url:
            watchdog = subprocess.Popen(
                [sys.executable, "-m", "bench.watchdog", "--parent", str(os.getpid()),
                 "--data-dir", str(work_dir / "pg"), "--max-seconds", str(WATCHDOG_SECONDS)],
                start_new_session=True, stdin=subprocess.DEVNULL)
        say("bench", "starting PostgreSQL" if not settings.database_url else "using the given database")
        url = database.start()
        machine = machine_info(database.version(), nginx_version())
        context = Context(settings, url, work_dir)
        for number in settings.scenarios:
            entry, scenario_samples = _run_scenario(number, context)
            key = f"s{number}"
            scenarios[key], samples[key] = entry, scenario_samples
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:
            database.stop()
        finally:
            if watchdog is not None:
                watchdog.terminate()
                watchdog.wait(timeout=10)
            _keep_logs(work_dir, folder)
            shutil.rmtree(work_dir, ignore_errors=True)
    result = {
        "version": 1,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - begun, 1),
        "command": command or shlex.join(sys.orig_argv),
        "commit": commit,
        "machine": {**machine, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": settings.as_json(),
        "scenarios": scenarios,
        "targets": evaluate(scenarios),
    }
    written = write_report(result, samples, folder)
    if settings.publish:
        written += publish(result, samples, REPO / "bench")
    for path in written:
        say("bench", f"wrote {path}")
    return result, folder


def publish(result: dict[str, Any], samples: dict[str, dict[str, list[float]]], folder: Path) -> list[Path]:
    """bench/RESULTS.md and RESULTS.png from this run; notes below NOTES_MARKER in RESULTS.md are kept."""
    target = folder / "RESULTS.md"
    notes = ""
    if target.exists():
        text = target.read_text()
        if NOTES_MARKER in text:
            notes = text[text.index(NOTES_MARKER):]
    written = write_report(result, samples, folder, markdown_name="RESULTS.md", image_name="RESULTS.png",
                           with_json=False)
    if notes:
        target.write_text(target.read_text().rstrip("\n") + "\n\n" + notes)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure mailslot against its ceilings and a peer (nginx + nchan); see bench/RESULTS.md.",
    )
    add_arguments(parser)
    settings = settings_from(parser.parse_args(argv))
    say("bench", "settings: " + ", ".join(f"{k}={v}" for k, v in settings.as_json().items()))
    try:
        result, _ = run(settings)
    except KeyboardInterrupt:
        say("bench", "interrupted; everything started was stopped")
        return 130
    failed = [key for key, entry in result["scenarios"].items() if entry["status"] == "failed"]
    for verdict in result["targets"]:
        say("targets", f"{verdict['scenario']} {verdict['figure']}: "
            + ("hit" if verdict["hit"] else "MISS" if verdict["hit"] is False else "no value")
            + (f" ({verdict['by_percent']:+.1f} %)" if verdict["by_percent"] is not None else ""))
    return 1 if failed else 0
