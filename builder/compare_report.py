"""Comparison → compare.json, compare.md, compare.html; Bench → bench.json. Pure text builders.

The table (`table`) is built once and rendered three ways (Markdown here, HTML here, a rich table in
the CLI), so every output shows the same rows. The HTML page is self-contained: inline CSS and
inline SVG bar charts, no script and no network.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder.bench import Bench, BuildTiming
from builder.compare import Comparison, FindingCount, Measured, Parity, Ratio
from builder.files import atomic_write
from builder.layers import GZIP_LEVEL, Layer
from builder.report import startup_summary
from builder.verify import Timing

SCHEMA = "imagewright.compare/1"
BENCH_SCHEMA = "imagewright.bench/1"
# Bar fills, one per series; the report's other colours never reuse them (tests look for them).
SIZE_COLOURS = ("#2563eb", "#93c5fd")
STARTUP_COLOURS = ("#dc2626", "#f59e0b", "#16a34a")
_SEVERITY_SHORT = {"CRITICAL": "C", "HIGH": "H", "MEDIUM": "M", "LOW": "L", "UNKNOWN": "U"}
COMPRESSED_NOTE = (f"gzip (level {GZIP_LEVEL}, as `docker push` sends them) of each layer tar from "
                   "`docker save`, summed")
WASTE_NOTE = ("bytes of files that two or more layers wrote or removed, every copy counted (dive's "
              "measure); efficiency = smallest copy ÷ all copies, summed over paths")


# ---- the table ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    text: str
    finding: bool = False  # shown in red: something prod should not have, or dev/prod drift


@dataclass(frozen=True)
class Row:
    section: str
    label: str
    cells: tuple[Cell, ...]


def human_bytes(size: int | float | None) -> str:
    """Decimal units, as `docker images` prints them."""
    if size is None:
        return "—"
    if size >= 1e6:
        return f"{size / 1e6:,.1f} MB"
    return f"{size / 1e3:.1f} kB" if size >= 1e3 else f"{size:.0f} B"


def _timing(timing: Timing | None) -> str:
    if timing is None:
        return "—"
    if len(timing.samples_ms) == 1:
        return f"{timing.median:,.0f} ms"
    return f"{timing.median:,.0f} ms ({min(timing.samples_ms):,.0f}-{max(timing.samples_ms):,.0f})"


def _memory(measured: Measured, otel: bool) -> str:
    runs = (measured.startup_otel if otel else measured.startup_plain).runs
    values = sorted(run.memory_bytes for run in runs)
    return human_bytes(values[len(values) // 2]) if values else "—"


def _findings(count: FindingCount, severities: bool = True) -> str:
    if count.total is None:
        return _not_run(count.not_run)
    parts = [f"{_SEVERITY_SHORT.get(name, name[:1])} {number}" for name, number in count.by_severity
             if number or name in ("CRITICAL", "HIGH")]
    return f"{count.total} ({' · '.join(parts)})" if severities and parts else str(count.total)


def _not_run(reason: str) -> str:
    """'not run (a reason (its details))' → 'not run (a reason)': the table gets the gist, the notes
    under it and compare.json keep the whole reason."""
    inner = reason.removeprefix("not run").strip().removeprefix("(").removesuffix(")")
    gist = re.split(r" \(| in /", inner, maxsplit=1)[0].strip()  # details and paths: in the notes
    return f"not run ({_short(gist, 52)})" if gist else "not run"


def not_run_reasons(comparison: Comparison) -> list[str]:
    """Every distinct reason a scanner did not run, in full."""
    reasons = (count.not_run for m in comparison.columns
               for count in (m.security.vulnerabilities, m.security.secrets,
                             m.security.misconfigurations) if count.total is None)
    return list(dict.fromkeys(reason for reason in reasons if reason))


def _severe(count: FindingCount) -> bool:
    return any(number for name, number in count.by_severity if name in ("CRITICAL", "HIGH"))


def _listing(items: Sequence[str], limit: int = 3) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return f"{len(items)}: {shown}" + (", …" if len(items) > limit else "")


def _parity_cell(measured: Measured, parity: Sequence[Parity]) -> Cell:
    if measured.column.variant == "dev":
        return Cell("reference")
    found = next((p for p in parity if p.column == measured.column.name), None)
    if found is None:
        return Cell("— (not compared: a baseline)")
    if found.problem:
        return Cell(f"✘ {found.problem}", True)
    python = (f"Python {found.prod_python} = dev {found.dev_python}" if found.python_matches
              else f"Python {found.prod_python or '?'} ≠ dev {found.dev_python or '?'}")
    if found.ok:
        return Cell(f"✔ all {found.packages} packages at dev's version; {python}")
    drift = [f"{name} {prod} ≠ dev {dev}" for name, prod, dev in found.different]
    drift += [f"{item} missing in dev" for item in found.missing_in_dev]
    return Cell(f"✘ {python}; {_listing(drift)}" if drift else f"✘ {python}", True)


def table(comparison: Comparison) -> list[Row]:
    """Every row of the comparison, one cell per column, in report order."""
    columns = comparison.columns

    def row(section: str, label: str, cell: Callable[[Measured], Cell | str]) -> Row:
        cells = tuple(value if isinstance(value, Cell) else Cell(value)
                      for value in (cell(m) for m in columns))
        return Row(section, label, cells)

    def surface(label: str, value: Callable[[Measured], tuple[str, bool]]) -> Row:
        def cell(m: Measured) -> Cell:
            text, bad = value(m)
            return Cell(text, bad and m.column.variant == "prod")
        return row("Security", label, cell)

    def yes_no(items: Sequence[str]) -> tuple[str, bool]:
        return (f"yes ({', '.join(items[:4])}{', …' if len(items) > 4 else ''})" if items else "no",
                bool(items))

    def largest(m: Measured) -> str:
        layer = m.layers.largest(1)[0] if m.layers.layers else None
        return "—" if layer is None else f"{human_bytes(layer.size_bytes)} · {_made_by(layer)}"

    def timing(phase: str, otel: bool) -> Callable[[Measured], str]:
        return lambda m: _timing((m.startup_otel if otel else m.startup_plain).timing(phase))

    runs = comparison.runs
    return [
        row("Image", "Image", lambda m: m.column.image),
        row("Size", "Size, uncompressed (docker image inspect)", lambda m: human_bytes(m.size_bytes)),
        row("Size", "Size, compressed (gzip'd layers, as pushed)",
            lambda m: human_bytes(m.layers.compressed_bytes)),
        row("Size", "Layers", lambda m: str(len(m.layers.layers))),
        row("Size", "Largest layer", largest),
        row("Size", "Wasted across layers (dive-style)",
            lambda m: f"{human_bytes(m.layers.waste.bytes)} (efficiency "
                      f"{m.layers.waste.efficiency:.1%})"),
        row("Packages", "OS packages (SBOM)",
            lambda m: "—" if m.packages.os is None else str(m.packages.os)),
        row("Packages", "Python packages (SBOM)",
            lambda m: "—" if m.packages.python is None else str(m.packages.python)),
        row("Packages", "Python version", lambda m: m.packages.python_version or "—"),
        row("Packages", "Parity with dev (packages, Python)",
            lambda m: _parity_cell(m, comparison.parity)),
        row("Security", "Vulnerabilities (Trivy)",
            lambda m: Cell(_findings(m.security.vulnerabilities),
                           m.column.variant == "prod" and _severe(m.security.vulnerabilities))),
        row("Security", "Secrets (Trivy)",
            lambda m: Cell(_findings(m.security.secrets, severities=False),
                           m.column.variant == "prod" and bool(m.security.secrets.total))),
        row("Security", "Dockerfile misconfigurations (Trivy)",
            lambda m: _findings(m.security.misconfigurations, severities=False)),
        surface("Runs as root", lambda m: (f"yes (USER {m.security.surface.user or 'unset'})"
                                           if m.security.surface.runs_as_root
                                           else f"no (USER {m.security.surface.user})",
                                           m.security.surface.runs_as_root)),
        surface("Shell present", lambda m: yes_no(m.security.surface.shells)),
        surface("Package manager present",
                lambda m: yes_no(m.security.surface.package_managers
                                 + (("pip module",) if m.security.surface.pip_module else ()))),
        surface("Compilers present", lambda m: yes_no(m.security.surface.compilers)),
        surface("setuid/setgid files", lambda m: (_listing(m.security.surface.setuid_files, 2),
                                                  bool(m.security.surface.setuid_files))),
        surface("World-writable paths", lambda m: (_listing(m.security.surface.world_writable, 2),
                                                   bool(m.security.surface.world_writable))),
        row("Security", "Exposed ports",
            lambda m: ", ".join(m.security.surface.exposed_ports) or "none"),
        row("Startup", f"Create → running, OTel on (median of {runs}, min-max)",
            timing("running_ms", True)),
        row("Startup", "Create → first healthy answer, OTel on", timing("healthy_ms", True)),
        row("Startup", "Create → first span received, OTel on", timing("first_span_ms", True)),
        row("Startup", "Create → running, OTel off", timing("running_ms", False)),
        row("Startup", "Create → first healthy answer, OTel off", timing("healthy_ms", False)),
        row("Startup", "Idle memory after first request (RSS), OTel on", lambda m: _memory(m, True)),
        row("Startup", "Idle memory after first request (RSS), OTel off",
            lambda m: _memory(m, False)),
    ]


def _made_by(layer: Layer, limit: int = 60) -> str:
    origin = f"[from {layer.from_base}] " if layer.from_base else ""
    return origin + _short(layer.instruction, limit)


def _short(instruction: str, limit: int = 60) -> str:
    return instruction if len(instruction) <= limit else instruction[:limit - 1] + "…"


def ratio_table(comparison: Comparison) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Headers ("prod-x ÷ dev", …) and one row per metric."""
    pairs = list(dict.fromkeys((r.numerator, r.denominator) for r in comparison.ratios))
    metrics = list(dict.fromkeys(r.metric for r in comparison.ratios))
    lookup = {(r.metric, r.numerator, r.denominator): r.value for r in comparison.ratios}
    headers = [f"{top} ÷ {bottom}" for top, bottom in pairs]
    rows = [(metric, [_ratio(lookup.get((metric, top, bottom))) for top, bottom in pairs])
            for metric in metrics]
    return headers, rows


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"x{value:.2f}"


# ---- compare.json ---------------------------------------------------------------------------------

def document(comparison: Comparison) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "service": comparison.service,
        "created": comparison.created,
        "machine": {**asdict(comparison.machine), "description": comparison.machine.describe()},
        "runs": comparison.runs,
        "columns": [_column(m) for m in comparison.columns],
        "parity": [{**asdict(p), "python_matches": p.python_matches, "ok": p.ok,
                    "different": [{"name": n, "prod": a, "dev": b} for n, a, b in p.different]}
                   for p in comparison.parity],
        "ratios": [asdict(r) for r in comparison.ratios],
        "skipped_flavors": [{"flavor": f, "reason": why} for f, why in comparison.skipped],
        "naive_build_seconds": comparison.naive_seconds,
        "notes": {
            "uncompressed": "`docker image inspect` Size: all layers, uncompressed, as stored",
            "compressed": COMPRESSED_NOTE,
            "wasted": WASTE_NOTE,
            "startup": "milliseconds from container create; 'without_opentelemetry' starts the app "
                       "command directly (no opentelemetry-instrument, no SDK import)",
            "naive": "templates/naive.Dockerfile.j2: the tutorial-style single-stage image of the "
                     "same app, built on the dev base in the same run",
        },
    }


def _column(m: Measured) -> dict[str, Any]:
    layers = m.layers
    return {
        **asdict(m.column),
        "size": {
            "uncompressed_bytes": m.size_bytes,
            "compressed_bytes": layers.compressed_bytes,
            "layer_count": len(layers.layers),
            "layers": [asdict(layer) for layer in layers.layers],
            "largest_layers": [layer.index for layer in layers.largest(5)],
            "wasted_bytes": layers.waste.bytes,
            "efficiency": layers.waste.efficiency,
            "wasted_paths": [asdict(path) for path in layers.waste.top],
        },
        "packages": asdict(m.packages),
        "security": {
            "scan_file": m.security.scan_file or None,
            "vulnerabilities": _count_json(m.security.vulnerabilities),
            "secrets": _count_json(m.security.secrets),
            "misconfigurations": _count_json(m.security.misconfigurations),
            "attack_surface": asdict(m.security.surface),
        },
        "startup": {"with_opentelemetry": startup_summary(m.startup_otel),
                    "without_opentelemetry": startup_summary(m.startup_plain)},
    }


def _count_json(count: FindingCount) -> dict[str, Any]:
    if count.total is None:
        return {"status": "not-run", "reason": count.not_run}
    return {"status": "ok", "total": count.total, "by_severity": dict(count.by_severity)}


def compare_json(comparison: Comparison) -> str:
    return json.dumps(document(comparison), indent=2) + "\n"


# ---- compare.md -----------------------------------------------------------------------------------

def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(comparison: Comparison) -> str:
    names = [m.column.name for m in comparison.columns]
    lines = [
        f"# {comparison.service}: {' vs '.join(names)}",
        "",
        f"Measured {comparison.created} on {comparison.machine.describe()}; startup figures are the "
        f"median of {comparison.runs} run(s) (min-max). ✘ marks a finding.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    section = ""
    for row in table(comparison):
        if row.section != section:
            section = row.section
            lines.append(f"| **{section}** |" + " |" * len(names))
        cells = [f"**{_md(c.text if c.text.startswith('✘') else '✘ ' + c.text)}**" if c.finding
                 else _md(c.text) for c in row.cells]
        lines.append(f"| {_md(row.label)} | " + " | ".join(cells) + " |")
    headers, ratio_rows = ratio_table(comparison)
    if headers:
        lines += ["", "## Ratios", "", "| | " + " | ".join(headers) + " |",
                  "|---|" + "---|" * len(headers)]
        lines += [f"| {metric} | " + " | ".join(values) + " |" for metric, values in ratio_rows]
    lines += ["", "## Largest layers", ""]
    for m in comparison.columns:
        lines += [f"**{m.column.name}** ({m.column.image}, {len(m.layers.layers)} layers)", "",
                  "| size | gzip'd | files | instruction |", "|---:|---:|---:|---|"]
        lines += [f"| {human_bytes(layer.size_bytes)} | {human_bytes(layer.compressed_bytes)} | "
                  f"{layer.files:,} | `{_md(_made_by(layer, 100))}` |"
                  for layer in m.layers.largest(5)]
        if m.layers.waste.top:
            wasted = ", ".join(f"`{p.path}` {human_bytes(p.bytes)}" for p in m.layers.waste.top[:3])
            lines += ["", f"Most wasted: {wasted}"]
        lines.append("")
    if comparison.skipped:
        lines += ["## Not compared", ""]
        lines += [f"- prod flavor `{flavor}`: {why}" for flavor, why in comparison.skipped]
        lines.append("")
    reasons = not_run_reasons(comparison)
    if reasons:
        lines += ["## Not run", ""] + [f"- {_md(reason)}" for reason in reasons] + [""]
    lines += [
        "## How these were measured", "",
        "- Size, uncompressed: `docker image inspect` Size.",
        f"- Size, compressed: {COMPRESSED_NOTE}.",
        f"- Wasted: {WASTE_NOTE}.",
        "- Packages: Trivy's CycloneDX SBOM (the scanner's `sbom.cdx.json` when it is current).",
        "- Parity: `/opt/venv/requirements.lock` of prod against dev's, and the venvs' Python.",
        "- Security: the scanner's `scan.json` for this exact image id (else \"not run\"); the "
        "attack surface from the exported filesystem and image config.",
        "- Startup: container create → running → first 2xx on the health path → first span at the "
        "OTLP receiver; OTel off starts the app command directly.",
        f"- naive: `templates/naive.Dockerfile.j2` (built in {comparison.naive_seconds:.0f}s this run).",
        "",
    ]
    return "\n".join(lines)


# ---- compare.html ---------------------------------------------------------------------------------

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
    names = [m.column.name for m in comparison.columns]
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
                  f"</td><td>{layer.files:,}</td><td><code>{e(_made_by(layer, 120))}</code>"
                  "</td></tr>" for layer in m.layers.largest(5)) + "</table>"
        for m in comparison.columns)
    skipped = "".join(f"<li>prod flavor <code>{e(f)}</code>: {e(why)}</li>"
                      for f, why in comparison.skipped)
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
</ul>
</body></html>
"""


def write_reports(comparison: Comparison, directory: Path) -> tuple[Path, Path, Path]:
    paths = (directory / "compare.json", directory / "compare.md", directory / "compare.html")
    for path, text in zip(paths, (compare_json(comparison), markdown(comparison),
                                  html_page(comparison)), strict=True):
        atomic_write(path, text)
    return paths


# ---- bench.json -----------------------------------------------------------------------------------

def _build_json(timing: BuildTiming) -> dict[str, Any]:
    return {"image": timing.image, "seconds": timing.seconds, "steps": len(timing.steps),
            "cached_steps": timing.cached_steps, "rebuilt_steps": list(timing.rebuilt)}


def bench_document(bench: Bench, compare_files: Sequence[Path] = ()) -> dict[str, Any]:
    return {
        "schema": BENCH_SCHEMA,
        "created": bench.created,
        "machine": {**asdict(bench.machine), "description": bench.machine.describe()},
        "runs": bench.runs,
        "ratios": {c.service: [asdict(r) for r in c.ratios] for c in bench.comparisons},
        "compare_reports": [str(path) for path in compare_files],
        "toolkit": {
            "cold_build": {**_build_json(bench.cold_build), "cache": "disabled (nocache)"},
            "warm_rebuild": {**_build_json(bench.warm_rebuild), "edited": bench.edited_file,
                             "dependency_layers_cached": bench.dependencies_cached},
            "scan": ({"status": "ok", "images": [asdict(s) for s in bench.scans]} if bench.scans
                     else {"status": "not-run", "reason": bench.scan_not_run or "no image"}),
            "naive_build_seconds": {c.service: c.naive_seconds for c in bench.comparisons},
        },
    }


def bench_json(bench: Bench, compare_files: Sequence[Path] = ()) -> str:
    return json.dumps(bench_document(bench, compare_files), indent=2) + "\n"


def ratio_summary(ratios: Sequence[Ratio]) -> list[str]:
    """One line per prod ÷ reference pair, for a terminal."""
    lines: list[str] = []
    for top, bottom in dict.fromkeys((r.numerator, r.denominator) for r in ratios):
        values = ", ".join(f"{r.metric} {_ratio(r.value)}" for r in ratios
                           if (r.numerator, r.denominator) == (top, bottom))
        lines.append(f"{top} ÷ {bottom}: {values}")
    return lines
