"""Writing a run's result: JSON (everything), Markdown (one table of every figure), PNG (latency plot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .stats import percentile

__all__ = ["PERCENTILES", "curves", "render_markdown", "write_plot", "write_report"]

PERCENTILES = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)

# (scenario key, sample name, legend label), grouped by plot panel.
_PANELS = (
    ("Scenario 1: empty short poll", (("s1", "gateway", "mailslot"), ("s1", "ceiling", "ceiling (bare aiohttp)"))),
    ("Scenario 2: claim (one poll)",
     (("s2", "gateway", "mailslot over HTTP"), ("s2", "ceiling", "claim SQL via asyncpg"))),
    ("Scenarios 3 and 5: send to receive, held polls",
     (("s3", "send_to_receive", "mailslot"), ("s5", "publish_to_receive", "nginx + nchan"))),
    ("Scenario 4: broadcast start to parked device", (("s4", "parked_devices", "mailslot, first device per person"),)),
)


def curves(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Each sample series as milliseconds at fixed percentiles: small enough for the JSON, enough to re-plot."""
    out = {}
    for name, values in samples.items():
        ordered = sorted(values)
        if ordered:
            out[name] = {f"p{q:g}": round(percentile(ordered, q) * 1000, 3) if q else round(ordered[0] * 1000, 3)
                         for q in PERCENTILES}
    return out


def write_plot(samples: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Latency distributions (percentile against milliseconds, log scale), one panel per comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5), dpi=80)
    for axis, (title, series) in zip(axes.flat, _PANELS, strict=True):
        drawn = False
        for key, name, label in series:
            values = sorted(samples.get(key, {}).get(name, []))
            values = [max(v * 1000, 1e-3) for v in values]
            if not values:
                continue
            step = max(1, len(values) // 2000)
            xs = [*values[::step], values[-1]]
            ys = [*(i * 100 / len(values) for i in range(0, len(values), step)), 100.0]
            axis.plot(xs, ys, label=f"{label} (n={len(values):,})")
            drawn = True
        axis.set_title(title, fontsize=10)
        axis.set_xscale("log")
        axis.set_xlabel("milliseconds")
        axis.set_ylabel("percentile")
        axis.grid(True, which="both", alpha=0.3)
        if drawn:
            axis.legend(fontsize=8, loc="lower right")
        else:
            axis.text(0.5, 0.5, "not run", ha="center", va="center", transform=axis.transAxes)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _kib(value: Any) -> str:
    return "-" if value is None else f"{value / 1024:,.2f} KiB"


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}" if isinstance(a, int | float) and isinstance(b, int | float) and b else ""


def _verdict(targets: list[dict[str, Any]], scenario: str, figure_start: str) -> str:
    for verdict in targets:
        if verdict["scenario"] == scenario and verdict["figure"].startswith(figure_start):
            if verdict["hit"] is None:
                return "no value"
            unit = verdict["unit"]
            bound = verdict["bound"]
            shown = f"{bound / 1024:g} KiB" if unit == "B" else f"{bound:,g}{'' if unit == 'x' else ' ' + unit}"
            sign = "≥" if verdict["at_least"] else "≤"
            word = "**hit**" if verdict["hit"] else "**miss**"
            return f"{sign} {shown}: {word} ({verdict['by_percent']:+.1f} %)"
    return ""


def _rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    s = result["scenarios"]
    t = result["targets"]
    rows: list[tuple[str, ...]] = []

    def status_row(key: str, title: str) -> bool:
        entry = s.get(key)
        if entry is None:
            return False
        if entry["status"] != "ok":
            rows.append((f"{key} {title}", entry["status"], entry.get("reason", ""), "", "", ""))
            return False
        return True

    def latency_rows(key: str, label: str, ours: dict[str, Any], theirs: dict[str, Any] | None) -> None:
        for q in ("p50", "p99"):
            a, b = ours.get(f"{q}_ms"), (theirs or {}).get(f"{q}_ms")
            rows.append((key, f"{label} {q} (ms)", _n(a, 2), _n(b, 2), _ratio(a, b), ""))

    def counters(key: str, entry: dict[str, Any]) -> None:
        rows.append((key, "duplicates / lost / errors", f"{entry['duplicates']} / {entry['lost']} / "
                     f"{sum(entry.get('errors', {}).values()) if isinstance(entry.get('errors'), dict) else 0}",
                     "", "", "= 0 / 0"))

    if status_row("s1", "empty short polls"):
        e = s["s1"]
        g, c = e["gateway"], e["ceiling"]
        rows.append(("s1", "empty polls/s", _n(g["polls_per_s"]), _n(c["polls_per_s"]), _n(e["ratio"], 2),
                     _verdict(t, "s1", "empty")))
        latency_rows("s1", "poll latency", g["latency"], c["latency"])
        rows.append(("s1", "errors (non-200, network)", _n(sum(g["errors"].values())),
                     _n(sum(c["errors"].values())), "", ""))
    if status_row("s2", "claim path"):
        e = s["s2"]
        g, c = e["gateway"], e["ceiling"]
        rows.append(("s2", "deliveries/s", _n(g["deliveries_per_s"]), _n(c["deliveries_per_s"]), _n(e["ratio"], 2),
                     _verdict(t, "s2", "deliveries")))
        rows.append(("s2", "messages delivered / expected", f"{g['delivered']:,} / {g['expected']:,}",
                     f"{c['delivered']:,} / {c['expected']:,}", "", ""))
        latency_rows("s2", "claim latency", g["latency"], c["latency"])
        rows.append(("s2", "duplicates / lost", f"{g['duplicates']} / {g['lost']}",
                     f"{c['duplicates']} / {c['lost']}", "", "= 0 / 0"))
        rows.append(("s2", "left queued (server API)", _n(g.get("left_queued")), "", "", "= 0"))
    s3 = s.get("s3") if s.get("s3", {}).get("status") == "ok" else None
    s5 = s.get("s5") if s.get("s5", {}).get("status") == "ok" else None
    if status_row("s3", "held polls") or s5 is not None:
        a, b = s3 or {}, s5 or {}
        rows.append(("s3 / s5", "held long polls (server workers)", f"{_n(a.get('held'))} ({_n(a.get('workers'))})",
                     f"{_n(b.get('held'))} ({_n(b.get('workers'))})", "", ""))
        rows.append(("s3 / s5", "server RSS per held poll", _kib(a.get("rss_per_held_poll_bytes")),
                     _kib(b.get("rss_per_held_poll_bytes")),
                     _ratio(a.get("rss_per_held_poll_bytes"), b.get("rss_per_held_poll_bytes")),
                     _verdict(t, "s3", "gateway RSS")))
        rows.append(("s3 / s5", "server connections open at that moment", _n(a.get("gateway_connections")),
                     _n(b.get("nginx_connections")), "", ""))
        rows.append(("s3 / s5", "server RSS per open connection", _kib(a.get("rss_per_connection_bytes")),
                     _kib(b.get("rss_per_connection_bytes")),
                     _ratio(a.get("rss_per_connection_bytes"), b.get("rss_per_connection_bytes")), ""))
        rows.append(("s3 / s5", "server PSS per held poll", _kib(a.get("pss_per_held_poll_bytes")),
                     _kib(b.get("pss_per_held_poll_bytes")),
                     _ratio(a.get("pss_per_held_poll_bytes"), b.get("pss_per_held_poll_bytes")), ""))
        rows.append(("s3 / s5", "kernel TCP buffers per held poll (sockstat mem, both ends)",
                     _kib(a.get("kernel_tcp_buffers_per_held_poll_bytes")),
                     _kib(b.get("kernel_tcp_buffers_per_held_poll_bytes")), "", ""))
        rows.append(("s3 / s5", "kernel socket objects per held poll (slabs, both ends)",
                     _kib(a.get("kernel_socket_objects_per_held_poll_bytes")),
                     _kib(b.get("kernel_socket_objects_per_held_poll_bytes")), "", ""))
        rows.append(("s3 / s5", "sends (publishes) accepted of due; offered rate, achieved rate",
                     f"{_n(a.get('sent'))} of {_n(a.get('due'))}; {_n(a.get('send_rate'))}/s, "
                     f"{_n(a.get('achieved_send_rate'))}/s",
                     f"{_n(b.get('published'))} of {_n(b.get('due'))}; {_n(b.get('publish_rate'))}/s, "
                     f"{_n(b.get('achieved_send_rate'))}/s", "", ""))
        ours, theirs = a.get("send_to_receive") or {}, b.get("publish_to_receive") or {}
        for q in ("p50", "p99", "max"):
            x, y = ours.get(f"{q}_ms"), theirs.get(f"{q}_ms")
            rows.append(("s3 / s5", f"send-to-receive {q} (ms)", _n(x, 2), _n(y, 2), _ratio(x, y),
                         _verdict(t, "s3", "send-to-receive") if q == "p99" else ""))
        rows.append(("s3 / s5", "send request p99 (ms)", _n((a.get("send_latency") or {}).get("p99_ms"), 2),
                     _n((b.get("publish_latency") or {}).get("p99_ms"), 2), "", ""))
        rows.append(("s3 / s5", "duplicates / lost / late at the end", f"{_n(a.get('duplicates'))} / "
                     f"{_n(a.get('lost'))} / {_n(a.get('late'))}",
                     f"{_n(b.get('duplicates'))} / {_n(b.get('lost'))} / -", "", "= 0 / 0 / 0"))
        rows.append(("s3 / s5", "errors (non-2xx, network)", _n(sum((a.get("errors") or {}).values())),
                     _n(sum((b.get("errors") or {}).values())), "", ""))
        acks = {name.partition('result="')[2].rstrip('"}'): n for name, n in (a.get("gateway_counters") or {}).items()
                if name.startswith("mailslot_poll_memory_acks_total{")}
        if acks:  # decision 0045: acknowledging polls that needed no claim
            rows.append(("s3", "acknowledging polls acked / unacked / refused",
                         f"{_n(acks.get('acked'))} / {_n(acks.get('unacked'))} / {_n(acks.get('refused'))}",
                         "", "", ""))
    if s.get("s5") is not None and s5 is None:
        rows.append(("s5 nginx + nchan", s["s5"]["status"], s["s5"].get("reason", ""), "", "", ""))
    if status_row("s4", "broadcast fan-out"):
        e = s["s4"]
        if e.get("broadcast_failure"):
            rows.append(("s4", "broadcast answer", f"{e['broadcast_failure']} after {e['request_seconds']:.1f} s",
                         "", "", ""))
            rows.append(("s4", "people/s until queued (at most)", "< " + _n(e["people_per_s_at_most"]), "", "",
                         _verdict(t, "s4", "people")))
        else:
            rows.append(("s4", "people/s until queued", _n(e["people_per_s"]), "", "", _verdict(t, "s4", "people")))
        rows.append(("s4", "queued / audience", f"{e['queued']:,} / {e['people']:,}", "", "", ""))
        rows.append(("s4", "broadcast request (s)", _n(e["request_seconds"], 2), "", "", ""))
        rows.append(("s4", "first parked device has it (s)", _n(e["first_parked_s"], 3), "", "", ""))
        rows.append(("s4", "every parked person has it (s)", _n(e["all_parked_s"], 3), "", "", ""))
        rows.append(("s4", "parked devices; duplicates / lost", f"{e['parked_devices']:,}; {e['duplicates']} / "
                     f"{e['lost']}", "", "", "= 0 / 0"))
        rows.append(("s4", "creating the people (s, not measured)", _n(e["seed_seconds"], 1), "", "", ""))
    if status_row("s6", "retention"):
        e = s["s6"]
        rounds = e["rounds"]
        rows.append(("s6", "messages sent in all (rounds x people)", f"{e['sent']:,} ({len(rounds)} x {e['people']:,})",
                     "", "", ""))
        rows.append(("s6", "message rows after each round", " ".join(f"{r['messages']:,}" for r in rounds), "", "",
                     ""))
        rows.append(("s6", "event rows after each round", " ".join(f"{r['events']:,}" for r in rounds), "", "", ""))
        rows.append(("s6", "message rows after the last round, in rounds' worth", _n(e["messages_rows_in_rounds"], 2),
                     "", "", _verdict(t, "s6", "messages rows")))
        rows.append(("s6", "max/min over the last half: message rows, event rows",
                     f"{_n(e['messages_rows_ratio_last_half'], 3)}, {_n(e['events_rows_ratio_last_half'], 3)}",
                     "", "", ""))
        rows.append(("s6", "table size (messages + events) after the first and the last round",
                     f"{_kib(rounds[0]['messages_bytes'] + rounds[0]['events_bytes'])}, "
                     f"{_kib(rounds[-1]['messages_bytes'] + rounds[-1]['events_bytes'])}" if rounds else "-",
                     "", "", ""))
        rows.append(("s6", "max/min over the last half: messages bytes, events bytes",
                     f"{_n(e['messages_bytes_ratio_last_half'], 3)}, {_n(e['events_bytes_ratio_last_half'], 3)}",
                     "", "", ""))
        rows.append(("s6", "duplicates / lost / errors", f"{e['duplicates']} / {e['lost']} / "
                     f"{sum(e['errors'].values())}", "", "", "= 0 / 0 / 0"))
    if status_row("s7", "100,000 held polls"):
        e = s["s7"]
        rows.append(("s7", "held long polls of those asked (server workers)",
                     f"{_n(e.get('held'))} of {_n(e.get('target_held'))} ({_n(e.get('workers'))})", "", "",
                     _verdict(t, "s7", "polls held")))
        rows.append(("s7", "server RSS per held poll", _kib(e.get("rss_per_held_poll_bytes")), "", "", ""))
        rows.append(("s7", "kernel TCP buffers per held poll (sockstat mem, both ends)",
                     _kib(e.get("kernel_tcp_buffers_per_held_poll_bytes")), "", "", ""))
        latency = e.get("send_to_receive") or {}
        rows.append(("s7", f"send-to-receive p50 / p99 (ms) at {_n(e.get('send_rate'))} msg/s",
                     f"{_n(latency.get('p50_ms'), 2)} / {_n(latency.get('p99_ms'), 2)}", "", "", ""))
        rows.append(("s7", "duplicates / lost / late; errors (non-2xx, network)",
                     f"{_n(e.get('duplicates'))} / {_n(e.get('lost'))} / {_n(e.get('late'))}; "
                     f"{_n(sum((e.get('errors') or {}).values()))}", "", "", "= 0 / 0 / 0; 0"))
    if status_row("s8", "send throughput"):
        e = s["s8"]
        for mode, label in (("single", "single sends"), ("batch", f"batches of {e['batch_size']}")):
            g, c = e[mode]["gateway"], e[mode]["ceiling"]
            rows.append(("s8", f"messages/s, {label} ({e['concurrency']} in flight)", _n(g["sends_per_s"]),
                         _n(c["sends_per_s"]), _n(e[mode]["ratio"], 2),
                         _verdict(t, "s8", "single") if mode == "single" else ""))
            latency_rows("s8", f"{label}: request latency", g["latency"], c["latency"])
            rows.append(("s8", f"{label}: duplicates / lost / errors",
                         f"{g['duplicates']} / {g['lost']} / {sum(g['errors'].values())}",
                         f"{c['duplicates']} / {c['lost']} / {sum(c['errors'].values())}", "", "= 0 / 0 / 0"))
    return rows


def render_markdown(result: dict[str, Any], image: str) -> str:
    m = result["machine"]
    lines = [
        "# mailslot bench results",
        "",
        f"Run of {result['started_at']} ({result['duration_s']:.0f} s), commit `{result['commit']}`.",
        "",
        "```",
        result["command"],
        "```",
        "",
        f"Machine: {m['cores']} cores, {m['memory_bytes'] / 2**30:.1f} GiB, {m['platform']}; "
        f"Python {m['python']}; {m['postgresql']}; {m['nginx']}; open files {m['open_files_limit']}; "
        f"load average at start {m['load_average_at_start']}, at end {m.get('load_average_at_end')} "
        "(other processes on the machine share its cores).",
        "",
        "| Scenario | Figure | mailslot | Ceiling / peer | Ratio | Target |",
        "|---|---|---:|---:|---:|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(result)]
    plot = f"![latency distributions]({image})" if image else "(No plot: pip install -e '.[bench]' for matplotlib.)"
    lines += ["", plot, ""]
    settings = ", ".join(f"{k}={v}" for k, v in result["settings"].items())
    lines += [f"Settings: {settings}.", ""]
    return "\n".join(lines)


def write_report(
    result: dict[str, Any], samples: dict[str, dict[str, list[float]]], folder: Path,
    *, markdown_name: str = "report.md", image_name: str = "latency.png", with_json: bool = True,
) -> list[Path]:
    """result.json (unless `with_json` is false), the Markdown report and the plot in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if with_json:
        json_path = folder / "result.json"
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        written.append(json_path)
    try:
        write_plot(samples, folder / image_name)
        written.append(folder / image_name)
    except ImportError:
        image_name = ""  # the report says how to get the plot
    (folder / markdown_name).write_text(render_markdown(result, image_name))
    return [*written, folder / markdown_name]
