"""The delivery funnel as an inline SVG line chart, drawn on the server: no chart library, no request
to the internet, no script (the console's CSP allows none inline), readable in a screenshot.
"""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup, escape

from ...core.history import FUNNEL_STEPS, Funnel

__all__ = ["COLORS", "funnel_svg"]

# One colour per step, as the legend and the totals' bars show them.
COLORS = {
    "queued": "#667085", "shown": "#4f46e5", "action": "#067647",
    "dismissed": "#dc6803", "expired": "#98a2b3", "recalled": "#b42318",
}
_W, _H = 720, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 16, 14, 34


def _label(at: datetime, first: datetime, bucket_s: int) -> str:
    """Day and time at the axis's start; later labels drop the day when it is the same."""
    at, first = at.astimezone(UTC), first.astimezone(UTC)
    if bucket_s >= 86400:
        return at.strftime("%b %d")
    clock = at.strftime("%H:%M:%S" if bucket_s < 60 else "%H:%M")
    return clock if at != first and at.date() == first.date() else at.strftime("%b %d ") + clock


def _ticks(top: int) -> list[int]:
    """Up to five round values (steps of 1, 2 or 5 times a power of ten) from 0 to at least `top`."""
    if top <= 0:
        return [0, 1]
    scale = 1
    while True:
        for step in (scale, 2 * scale, 5 * scale):
            if top / step <= 4:
                return list(range(0, -(-top // step) * step + 1, step))
        scale *= 10


def funnel_svg(funnel: Funnel, title: str) -> Markup:
    """The cumulative count of each step over time; the accessible name states the totals."""
    points = funnel.points
    ticks = _ticks(max((max(p.values()) for _, p in points), default=0))
    y_max = ticks[-1] or 1
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    span = (t1 - t0) or 1.0
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(at: datetime) -> float:
        return _LEFT + (at.timestamp() - t0) / span * plot_w

    def y(value: int) -> float:
        return _TOP + plot_h - value / y_max * plot_h

    summary = ", ".join(f"{step} {funnel.totals.get(step, 0)}" for step in FUNNEL_STEPS)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}: {escape(summary)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in ticks:
        parts.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eaecf0"/>')
        parts.append(f'<text x="{_LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#475467">{tick}</text>')
    first = points[0][0]
    labels = [(first, "start"), (points[-1][0], "end")]
    if len(points) >= 5:
        labels.insert(1, (points[len(points) // 2][0], "middle"))
    for at, anchor in labels:
        text = _label(at, first, funnel.bucket_s) + (" UTC" if anchor == "end" else "")
        parts.append(f'<text x="{x(at):.1f}" y="{_H - 12}" text-anchor="{anchor}" font-size="11" fill="#475467">'
                     f"{escape(text)}</text>")
    for step in FUNNEL_STEPS:
        # Steps, not slopes: a count changes within a bucket, and is flat until the next one.
        corners = []
        for i, (at, values) in enumerate(points):
            if i:
                corners.append(f"{x(at):.1f},{y(points[i - 1][1][step]):.1f}")
            corners.append(f"{x(at):.1f},{y(values[step]):.1f}")
        line = " ".join(corners)
        dash = ' stroke-dasharray="5 4"' if step in ("expired", "recalled") else ""
        parts.append(f'<polyline data-step="{step}" points="{line}" fill="none" stroke="{COLORS[step]}" '
                     f'stroke-width="2.2" stroke-linejoin="round"{dash}/>')
    parts.append("</svg>")
    return Markup("".join(parts))
