"""The comparison as rows of cells, built once: the Markdown, HTML and terminal tables all render it,
so every output shows the same rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from builder import naming
from builder.compare.measure import (
    Comparison,
    FindingCount,
    Measured,
    Parity,
    Ratio,
    pillar_runs,
)
from builder.inspect.checks import failed
from builder.inspect.layers import GZIP_LEVEL, Layer
from builder.verify.startup import TRACES_AND_METRICS, TRACES_ONLY, StartupStats, Timing

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


def _startup(stats: StartupStats, phase: str) -> str:
    timing = stats.timing(phase)
    if timing is None and stats.problem:
        return f"not measured ({_short(stats.problem, 60)})"
    return _timing(timing)


def _otel_setup_cell(measured: Measured) -> Cell:
    """Who set OpenTelemetry up in the running image; red when the app's own set-up is dead code."""
    setup, variant = measured.otel_setup, measured.column.variant
    if variant == naming.YOURS:
        spans = setup.spans if setup else 0
        return Cell(f"the image itself: {spans} span(s) arrived" if spans else
                    "no span arrived (no OpenTelemetry, or not read from OTEL_EXPORTER_OTLP_*)")
    if variant == naming.NAIVE:
        return Cell("the wrapper (opentelemetry-instrument in CMD)")
    if setup is None:
        return Cell(_startup(measured.startup_otel, "healthy_ms"))
    owner = ("the image's start (otel.mode: auto)" if setup.mode == "auto"
             else "the app itself (otel.mode: app)")
    if setup.dead_code:
        return Cell(f"✘ {owner}: the app's own set-up is dead code ({len(setup.evidence)} "
                    "sign(s), listed in compare.json and by `verify`)", True)
    return Cell(owner)


def _otel_off_cell(measured: Measured) -> Cell:
    """Whether "OTel off" really was: no wrapper, OTEL_SDK_DISABLED=true, and no span arrived."""
    plain = measured.startup_plain
    if not plain.runs:
        return Cell(_startup(plain, "healthy_ms"))
    how = ("OTEL_SDK_DISABLED=true" if measured.column.variant == naming.YOURS
           else "no wrapper, OTEL_SDK_DISABLED=true")
    if plain.leaked_spans:
        return Cell(f"✘ cannot be turned off: {plain.leaked_spans} span(s) arrived with {how}", True)
    return Cell(f"yes ({how}; no span arrived)")


def _memory(measured: Measured, otel: bool) -> str:
    runs = (measured.startup_otel if otel else measured.startup_plain).runs
    values = sorted(run.memory_bytes for run in runs)
    return human_bytes(values[len(values) // 2]) if values else "—"


# The pillars switched on one after the other: (StartupStats.mode, how a row names the step).
PILLAR_STEPS = (("plain", "all off"), (TRACES_ONLY.name, "traces only"),
                (TRACES_AND_METRICS.name, "+ metrics"), ("otel", "+ logs (= OTel on)"))


def _median_memory(stats: StartupStats) -> float | None:
    values = sorted(run.memory_bytes for run in stats.runs)
    return values[len(values) // 2] if values else None


def _median_healthy(stats: StartupStats) -> float | None:
    timing = stats.timing("healthy_ms")
    return timing.median if timing else None


def _pillar_cell(measured: Measured, step: int, value: Callable[[StartupStats], float | None],
                 show: Callable[[float], str]) -> str:
    """A step's median and what it adds to the step before (`+12 ms`, `+1.9 MB`)."""
    stats, before = (measured.pillar_stats(PILLAR_STEPS[index][0]) for index in (step, step - 1))
    now = value(stats) if stats else None
    if now is None:
        return "—"
    previous = value(before) if before else None
    if previous is None:
        return show(now)
    delta, change = now - previous, show(abs(now - previous))
    sign = "±" if change == show(0) else "+" if delta > 0 else "-"  # no "-0 ms"
    return f"{show(now)} ({sign}{change})"


def pillar_rows(comparison: Comparison) -> list[Row]:
    """Start-up to healthy and idle memory as the pillars are switched on one after the other."""
    section = (f"Per pillar (traces only, + metrics: median of {pillar_runs(comparison.runs)}; "
               "± vs the row before)")
    rows: list[Row] = []
    for what, value, show in (
            ("Create → first healthy answer", _median_healthy, lambda ms: f"{ms:,.0f} ms"),
            ("Idle memory (RSS)", _median_memory, human_bytes)):
        for step in range(1, len(PILLAR_STEPS)):
            rows.append(Row(section, f"{what}, {PILLAR_STEPS[step][1]}",
                            tuple(Cell(_pillar_cell(m, step, value, show))
                                  for m in comparison.columns)
                            + tuple(Cell("not run") for _ in comparison.unmeasured)))
    return rows


def pillar_lines(comparison: Comparison) -> list[str]:
    """One line per image: healthy time and idle memory from all off to all on, for a terminal."""
    lines: list[str] = []
    for m in comparison.columns:
        steps = [(label, stats) for mode, label in PILLAR_STEPS
                 if (stats := m.pillar_stats(mode)) is not None]
        healthy = " → ".join(f"{label} {ms:,.0f}" for label, stats in steps
                             if (ms := _median_healthy(stats)) is not None)
        memory = " → ".join(f"{label} {human_bytes(size)}" for label, stats in steps
                            if (size := _median_memory(stats)) is not None)
        lines.append(f"{m.column.name}: healthy (ms) {healthy}; idle RSS {memory}")
    return lines


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


def _sources_cell(kept: Sequence[str]) -> str:
    """Whether .py sources ship beside the byte-code (read off the image's files, not the spec)."""
    missing = [part for part in ("stdlib", "packages") if part not in kept]
    if not kept:
        return "byte-code only (stdlib, packages)"
    return f"kept ({', '.join(kept)})" + (f"; byte-code only ({', '.join(missing)})" if missing else "")


def _promises_cell(measured: Measured) -> Cell:
    """✔ or the ids of the broken promises: red for any image, dev's promises are promises too."""
    if not measured.promises:
        return Cell("— (promises nothing: a baseline)")
    broken = failed(measured.promises)
    if not broken:
        return Cell(f"✔ all {len(measured.promises)} hold")
    return Cell(f"✘ {len(broken)} of {len(measured.promises)} broken: "
                + ", ".join(f"{r.id} ({r.promise}: {r.detail})" for r in broken), True)


def table(comparison: Comparison) -> list[Row]:
    """Every row of the comparison, one cell per column, in report order; a column that could not
    be measured (your Dockerfile's base is not here) says so in each of its cells."""
    columns = comparison.columns

    def row(section: str, label: str, cell: Callable[[Measured], Cell | str]) -> Row:
        cells = tuple(value if isinstance(value, Cell) else Cell(value)
                      for value in (cell(m) for m in columns))
        missing = tuple(Cell(f"{n.image}: not run ({n.reason})" if label == "Image" else "not run")
                        for n in comparison.unmeasured)
        return Row(section, label, cells + missing)

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
        return "—" if layer is None else f"{human_bytes(layer.size_bytes)} · {made_by(layer)}"

    def timing(phase: str, otel: bool) -> Callable[[Measured], str]:
        return lambda m: _startup(m.startup_otel if otel else m.startup_plain, phase)

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
        row("Packages", "Python sources", lambda m: _sources_cell(m.security.surface.python_sources)),
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
        row("Security", "Promises (templates/catalog.yaml, IW-… checks)", _promises_cell),
        row("Startup", "OpenTelemetry set up by", _otel_setup_cell),
        row("Startup", f"Create → running, OTel on (median of {runs}, min-max)",
            timing("running_ms", True)),
        row("Startup", "Create → first healthy answer, OTel on", timing("healthy_ms", True)),
        row("Startup", "Create → first span received, OTel on", timing("first_span_ms", True)),
        row("Startup", "OTel off really off (no span arrives)", _otel_off_cell),
        row("Startup", "Create → running, OTel off", timing("running_ms", False)),
        row("Startup", "Create → first healthy answer, OTel off", timing("healthy_ms", False)),
        row("Startup", "Idle memory after first request (RSS), OTel on", lambda m: _memory(m, True)),
        row("Startup", "Idle memory after first request (RSS), OTel off",
            lambda m: _memory(m, False)),
        *pillar_rows(comparison),
    ]


def made_by(layer: Layer, limit: int = 60) -> str:
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


def ratio_summary(ratios: Sequence[Ratio]) -> list[str]:
    """One line per prod ÷ reference pair, for a terminal."""
    lines: list[str] = []
    for top, bottom in dict.fromkeys((r.numerator, r.denominator) for r in ratios):
        values = ", ".join(f"{r.metric} {_ratio(r.value)}" for r in ratios
                           if (r.numerator, r.denominator) == (top, bottom))
        lines.append(f"{top} ÷ {bottom}: {values}")
    return lines
