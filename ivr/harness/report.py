"""The load report as one self-contained HTML page: counts, percentiles of every timing,
failures by step and cause, and each timing's p50/p90/p99 over time as inline SVG."""

from __future__ import annotations

import html
from typing import Any

_COLOURS = {"p50": "#2b7bb9", "p90": "#e69f00", "p99": "#d55e00"}


def _chart(title: str, points: list[tuple[float, dict[str, Any]]]) -> str:
    w, h, pad = 640, 220, 40
    series = {p: [(t, s[p]) for t, s in points if p in s] for p in _COLOURS}
    values = [v for pts in series.values() for _, v in pts]
    if not values:
        return f"<h3>{html.escape(title)}</h3><p>no samples</p>"
    t_max = max(t for t, _ in points) or 1.0
    v_max = max(values) * 1.1 or 1.0

    def xy(t: float, v: float) -> str:
        return f"{pad + (w - 2 * pad) * t / t_max:.1f},{h - pad - (h - 2 * pad) * v / v_max:.1f}"

    lines = []
    for name, pts in series.items():
        if pts:
            path = " ".join(xy(t, v) for t, v in pts)
            lines.append(f'<polyline fill="none" stroke="{_COLOURS[name]}" stroke-width="2" '
                         f'points="{path}"><title>{name}</title></polyline>')
    legend = " ".join(f'<tspan fill="{c}">{p}</tspan>' for p, c in _COLOURS.items())
    return (f"<h3>{html.escape(title)}</h3>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'style="border:1px solid #ccc">'
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#888"/>'
            f'<text x="{pad}" y="{pad - 8}" font-size="12">{v_max:.0f} ms</text>'
            f'<text x="{w - pad}" y="{h - 12}" font-size="12" text-anchor="end">'
            f'{t_max:.0f} s</text>'
            f'<text x="{w / 2}" y="{pad - 8}" font-size="12">{legend}</text>'
            + "".join(lines) + "</svg>")


def html_report(title: str, data: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(t)}</td>"
        + "".join(f"<td>{s.get(k, '-')}</td>" for k in ("count", "p50", "p90", "p99", "max"))
        + "</tr>" for t, s in data["timings_ms"].items())
    fails = "".join(
        f"<tr><td>{f['count']}</td><td>{html.escape(f['step'])}</td>"
        f"<td>{html.escape(f['cause'])}<br><small>{html.escape(f.get('example', ''))}</small>"
        f"</td></tr>" for f in data["failures"]) or \
        "<tr><td colspan=3>none</td></tr>"
    charts = "".join(
        _chart(f"{t} over time", [(w["t_s"], w[t]) for w in data["over_time"]])
        for t in data["timings_ms"])
    plan = html.escape(", ".join(f"{k} {v}" for k, v in data.get("plan", {}).items()))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{plan}</p>
<p>calls started {data['started']}, passed {data['passed']}, failed {data['failed']}</p>
<h2>Timings (ms)</h2><table><tr><th>timing</th><th>count</th><th>p50</th><th>p90</th>
<th>p99</th><th>max</th></tr>{rows}</table>
<h2>Failures by step and cause</h2><table><tr><th>calls</th><th>step</th><th>cause</th></tr>
{fails}</table>
<h2>Percentiles over time</h2>{charts}
</body></html>
"""
