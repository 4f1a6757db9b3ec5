"""CPU per poll of scenario 1, split by process, on both sides: what the ratio to the ceiling is made of.

Why: with both cores busy on both sides of s1, its ratio is the ratio of CPU per request over every
process that serves it (the gateway's workers, PostgreSQL's backends, the load generators), not
only the gateway's. py-spy cannot say this: it counts a worker that is runnable but waiting for a
core as busy, which inflates the lines where a process is preempted (the answer's `write()`, which
wakes a load generator). This reads user and system time and context switches of every process
from `/proc/<pid>/stat` and `/proc/<pid>/status` over a window of each side's measured phase,
and divides by the polls `/metrics` counted in the same window (for the ceiling, its polls/s).

Run it under the exclusive CPU lock, from the checkout whose gateway it measures:
`python -m bench.cpu_split LABEL [python -m bench arguments...]`; one JSON line per run goes to
stdout and is appended to `bench/results/cpu-split.jsonl`. Linux only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

TICK = os.sysconf("SC_CLK_TCK")
# The window: 4 s into the measured phase (after s1's 2 s warm-up), 10 s long.
START_AFTER_S = 6.0
WINDOW_S = 10.0
# PostgreSQL's own processes; any other `postgres:` process is a backend.
_PG_KINDS = ("checkpointer", "background", "walwriter", "autovacuum", "logical", "io", "startup", "walsummarizer")


def _read(pid: int) -> dict[str, Any] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    switches = [int(n) for n in re.findall(r"voluntary_ctxt_switches:\s+(\d+)", status)]
    return {"ppid": int(fields[1]), "user": int(fields[11]), "system": int(fields[12]),
            "switches": sum(switches), "cmd": cmd}


def _processes() -> dict[int, dict[str, Any]]:
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (process := _read(int(name))) is not None:
            found[int(name)] = process
    return found


def _tree(processes: dict[int, dict[str, Any]], root: int) -> set[int]:
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(child for child, p in processes.items() if p["ppid"] == pid and child not in tree)
    return tree


def _groups(processes: dict[int, dict[str, Any]], bench_pid: int) -> dict[int, str]:
    """Each process of the run, by role: the bench's own tree and its PostgreSQL (pg_ctl daemonizes it)."""
    pids = _tree(processes, bench_pid)
    for pid, p in processes.items():
        if "mailslot-bench-" in p["cmd"] and " -D " in p["cmd"] and p["cmd"].split(" ")[0].endswith("postgres"):
            pids |= _tree(processes, pid)
    supervisors = {pid for pid in pids if "gateway serve" in processes[pid]["cmd"]}
    ceilings = set().union(*(_tree(processes, pid) for pid in pids if "bench.ceiling_server" in processes[pid]["cmd"]))
    groups = {}
    for pid in pids:
        p = processes[pid]
        cmd = p["cmd"]
        if pid in supervisors:
            group = "gateway supervisor"
        elif p["ppid"] in supervisors:
            group = "gateway workers"
        elif pid in ceilings:
            group = "ceiling workers"
        elif cmd.startswith("postgres:"):
            kind = cmd.split(":", 1)[1].strip().split(" ")[0]
            group = f"pg {kind}" if kind in _PG_KINDS else "pg backends"
        elif cmd.split(" ")[0].endswith("postgres"):
            group = "pg postmaster"
        elif "multiprocessing" in cmd:
            group = "load generators"
        else:
            group = "bench"
        groups[pid] = group
    return groups


def _metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("mailslot_polls_total", "mailslot_barrier_polls_total", "mailslot_barrier_rounds_total")):
            sample, _, value = line.rpartition(" ")
            samples[sample] = samples.get(sample, 0.0) + float(value)
    return samples


def _window(side: str, bench_pid: int, into: dict[str, Any]) -> None:
    time.sleep(START_AFTER_S)
    before = _processes()
    groups = _groups(before, bench_pid)
    port = next((int(m.group(1)) for pid in groups
                 if (m := re.search(r"gateway serve .*--port (\d+)", before[pid]["cmd"]))), None)
    counts_before = _metrics(port) if side == "gateway" and port else {}
    started = time.monotonic()
    time.sleep(WINDOW_S)
    after = _processes()
    counts_after = _metrics(port) if counts_before and port else {}
    split: dict[str, dict[str, float]] = {}
    for pid, group in groups.items():
        a, b = before[pid], after.get(pid)
        if b is None or b["cmd"] != a["cmd"]:
            continue
        entry = split.setdefault(group, {"user": 0, "system": 0, "switches": 0, "processes": 0})
        for key in ("user", "system", "switches"):
            entry[key] += b[key] - a[key]
        entry["processes"] += 1
    into[side] = {"seconds": time.monotonic() - started, "split": split,
                  "counts": {k: counts_after[k] - counts_before.get(k, 0.0) for k in counts_after}}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    label, extra = args[0], args[1:]
    command = [sys.executable, "-m", "bench", "--scenarios", "1", *extra]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert run.stderr is not None
    found: dict[str, Any] = {}
    rates: dict[str, float] = {}
    windows = []
    for line in run.stderr:
        sys.stderr.write(line)
        for side in ("gateway", "ceiling"):
            if re.search(rf"s1: {side}: \d+ connections for", line):
                window = threading.Thread(target=_window, args=(side, run.pid, found))
                window.start()
                windows.append(window)
        if m := re.search(r"s1: (gateway|ceiling): ([\d,]+) polls/s", line):
            rates[m.group(1)] = float(m.group(2).replace(",", ""))
    run.wait()
    for window in windows:
        window.join()
    result: dict[str, Any] = {"label": label, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "polls_per_s": rates}
    if rates.get("gateway") and rates.get("ceiling"):
        result["ratio"] = round(rates["gateway"] / rates["ceiling"], 3)
    for side, measured in found.items():
        polls = measured["counts"].get("mailslot_polls_total") or rates.get(side, 0.0) * measured["seconds"]
        split = measured["split"]
        result[side] = {
            "polls": round(polls),
            "cpu_us_per_poll": {g: round((v["user"] + v["system"]) / TICK / polls * 1e6, 1) for g, v in split.items()},
            "system_us_per_poll": {g: round(v["system"] / TICK / polls * 1e6, 1) for g, v in split.items()},
            "switches_per_poll": {g: round(v["switches"] / polls, 2) for g, v in split.items()},
            "barrier": {k: v for k, v in measured["counts"].items() if "barrier" in k},
        }
    line = json.dumps(result)
    print(line)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    with (out / "cpu-split.jsonl").open("a") as file:
        file.write(line + "\n")
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
