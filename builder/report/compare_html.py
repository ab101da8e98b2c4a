"""Comparison → compare.html: self-contained (inline CSS and SVG bar charts, no script, no network)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from builder.compare.measure import Comparison
from builder.report.compare_table import (
    COMPRESSED_NOTE,
    WASTE_NOTE,
    human_bytes,
    made_by,
    not_run_reasons,
    ratio_table,
    table,
)

# Bar fills, one per series; the report's other colours never reuse them (tests look for them).
SIZE_COLOURS = ("#2563eb", "#93c5fd")
STARTUP_COLOURS = ("#dc2626", "#f59e0b", "#16a34a")

@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: tuple[float | None, ...]


def bar_chart(chart_id: str, title: str, categories: Sequence[str], series: Sequence[Series],
              unit: Callable[[float], str]) -> str:
    """Horizontal grouped bars as inline SVG: one group per image, one bar per series."""
    width, label_width, bar, gap, top = 760, 150, 18, 14, 56
    plot = width - label_width - 110
    peak = max((v for s in series for v in s.values if v is not None), default=0) or 1
    group = bar * len(series) + gap
    height = top + group * len(categories) + 10
    parts = [f'<svg id="{chart_id}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="0" y="18" class="chart-title">{html.escape(title)}</text>']
    x = 0
    for s in series:
        parts.append(f'<rect x="{x}" y="30" width="12" height="12" fill="{s.colour}"/>'
                     f'<text x="{x + 16}" y="41" class="legend">{html.escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    for index, category in enumerate(categories):
        y0 = top + index * group
        parts.append(f'<text x="{label_width - 8}" y="{y0 + bar * len(series) / 2 + 4}" '
                     f'text-anchor="end" class="category">{html.escape(category)}</text>')
        for number, s in enumerate(series):
            value = s.values[index]
            y = y0 + number * bar
            if value is None:
                parts.append(f'<text x="{label_width + 4}" y="{y + bar - 5}" class="value">'
                             'not measured</text>')
                continue
            length = max(1.0, plot * value / peak)
            parts.append(f'<rect x="{label_width}" y="{y + 1}" width="{length:.1f}" '
                         f'height="{bar - 2}" fill="{s.colour}"><title>{html.escape(s.name)}: '
                         f'{html.escape(unit(value))}</title></rect>'
                         f'<text x="{label_width + length + 6:.1f}" y="{y + bar - 5}" '
                         f'class="value">{html.escape(unit(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def size_chart(comparison: Comparison) -> str:
    names = [m.column.name for m in comparison.columns]
    return bar_chart("size-chart", "Image size (MB)", names, [
        Series("uncompressed", SIZE_COLOURS[0], tuple(m.size_bytes for m in comparison.columns)),
        Series("compressed, as pushed", SIZE_COLOURS[1],
               tuple(m.layers.compressed_bytes for m in comparison.columns)),
    ], human_bytes)


def startup_chart(comparison: Comparison) -> str:
    names = [m.column.name for m in comparison.columns]
    return bar_chart("startup-chart", f"Startup from container create (median of "
                                      f"{comparison.runs}, ms)", names, [
        Series("healthy, OTel on", STARTUP_COLOURS[0],
               tuple(m.median("healthy_ms") for m in comparison.columns)),
        Series("first span", STARTUP_COLOURS[1],
               tuple(m.median("first_span_ms") for m in comparison.columns)),
        Series("healthy, OTel off", STARTUP_COLOURS[2],
               tuple(m.median("healthy_ms", otel=False) for m in comparison.columns)),
    ], lambda ms: f"{ms:,.0f} ms")


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937;
       margin: 24px auto; max-width: 1320px; padding: 0 16px; background: #ffffff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #4b5563; margin: 0 0 16px; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; }
figure { margin: 0; padding: 12px; border: 1px solid #e5e7eb; border-radius: 6px; }
.chart-title { font-weight: 600; font-size: 14px; fill: #111827; }
.legend, .value { font-size: 12px; fill: #374151; } .category { font-size: 13px; fill: #111827; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { border: 1px solid #e5e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; } tr.section td { background: #f9fafb; font-weight: 600; }
td.finding { color: #b91c1c; font-weight: 600; background: #fef2f2; }
code { font-size: 12px; }
"""


def html_page(comparison: Comparison) -> str:
    names = comparison.column_names
    e = html.escape
    rows: list[str] = []
    section = ""
    for row in table(comparison):
        if row.section != section:
            section = row.section
            rows.append(f'<tr class="section"><td colspan="{len(names) + 1}">{e(section)}</td></tr>')
        cells = "".join(f'<td class="finding">{e(c.text)}</td>' if c.finding else f"<td>{e(c.text)}</td>"
                        for c in row.cells)
        rows.append(f"<tr><th>{e(row.label)}</th>{cells}</tr>")
    headers, ratio_rows = ratio_table(comparison)
    ratios = ("<table><tr><th></th>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>"
              + "".join(f"<tr><th>{e(metric)}</th>" + "".join(f"<td>{e(v)}</td>" for v in values)
                        + "</tr>" for metric, values in ratio_rows) + "</table>")
    layers = "".join(
        f"<h3>{e(m.column.name)} <small>({e(m.column.image)}, {len(m.layers.layers)} layers)</small>"
        "</h3><table><tr><th>size</th><th>gzip'd</th><th>files</th><th>instruction</th></tr>"
        + "".join(f"<tr><td>{human_bytes(layer.size_bytes)}</td><td>{human_bytes(layer.compressed_bytes)}"
                  f"</td><td>{layer.files:,}</td><td><code>{e(made_by(layer, 120))}</code>"
                  "</td></tr>" for layer in m.layers.largest(5)) + "</table>"
        for m in comparison.columns)
    skipped = "".join(f"<li>prod flavor <code>{e(f)}</code>: {e(why)}</li>"
                      for f, why in comparison.skipped) + "".join(
        f"<li><code>{e(n.name)}</code> ({e(n.image)}): {e(n.reason)}</li>"
        for n in comparison.unmeasured)
    not_run = "".join(f"<li>{e(reason)}</li>" for reason in not_run_reasons(comparison))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(comparison.service)}: image comparison</title>
<style>{_CSS}</style></head>
<body>
<h1>{e(comparison.service)}: {e(" vs ".join(names))}</h1>
<p class="meta">Measured {e(comparison.created)} on {e(comparison.machine.describe())}.
Startup: median of {comparison.runs} run(s), min-max in brackets. Red marks a finding.</p>
<div class="charts">
<figure>{size_chart(comparison)}</figure>
<figure>{startup_chart(comparison)}</figure>
</div>
<h2>Side by side</h2>
<table><tr><th></th>{"".join(f"<th>{e(n)}</th>" for n in names)}</tr>
{"".join(rows)}
</table>
<h2>Ratios</h2>
{ratios}
<h2>Largest layers</h2>
{layers}
{f"<h2>Not compared</h2><ul>{skipped}</ul>" if skipped else ""}
{f"<h2>Not run</h2><ul>{not_run}</ul>" if not_run else ""}
<h2>How these were measured</h2>
<ul><li>Size, compressed: {e(COMPRESSED_NOTE)}.</li><li>Wasted: {e(WASTE_NOTE)}.</li>
<li>Security counts come from the scanner's scan.json for this exact image id, else "not run".</li>
<li>naive: templates/naive.Dockerfile.j2, the tutorial-style single-stage image of the same app.</li>
<li>yours: the service folder's own Dockerfile, built and run as it is (when there is one).</li>
</ul>
</body></html>
"""
