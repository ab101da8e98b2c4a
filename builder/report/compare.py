"""Comparison → compare.json and compare.md (and, through compare_html, compare.html); Bench →
bench.json. Pure text builders, written atomically."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from builder.compare.bench import Bench, BuildTiming
from builder.compare.goals import otel_goals
from builder.compare.measure import Comparison, FindingCount, Measured
from builder.core.files import atomic_write
from builder.report.common import markdown_cell
from builder.report.compare_html import html_page
from builder.report.compare_table import (
    COMPRESSED_NOTE,
    PILLAR_STEPS,
    WASTE_NOTE,
    human_bytes,
    made_by,
    not_run_reasons,
    ratio_table,
    table,
)
from builder.report.verify import otel_setup_document, startup_summary

SCHEMA = "imagewright.compare/1"
BENCH_SCHEMA = "imagewright.bench/1"
BENCH_REPORT = "bench.json"


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
        "not_measured": [asdict(n) for n in comparison.unmeasured],
        "naive_build_seconds": comparison.naive_seconds,
        "notes": {
            "uncompressed": "`docker image inspect` Size: all layers, uncompressed, as stored",
            "compressed": COMPRESSED_NOTE,
            "wasted": WASTE_NOTE,
            "startup": "milliseconds from container create; 'healthy' is the first 2xx on the health "
                       "path, or without one the port accepting connections; "
                       "'without_opentelemetry' starts the app command directly (no "
                       "opentelemetry-instrument, no SDK import) with OTEL_SDK_DISABLED=true, and "
                       "'really_off' is false when spans arrived all the same; "
                       "'with_opentelemetry' exports traces, metrics and logs (the image's "
                       "defaults); 'per_pillar' switches metrics and logs off with "
                       "OTEL_METRICS_EXPORTER/OTEL_LOGS_EXPORTER=none, fewer runs each",
            "naive": "templates/naive.Dockerfile.j2: the tutorial-style single-stage image of the "
                     "same app, built on the dev base in the same run",
            "yours": "the service folder's own Dockerfile (your image today), built in the same "
                     "run and run as it is; listed under not_measured when it cannot be built here",
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
            "promises": [asdict(result) for result in m.promises],
        },
        "startup": {"with_opentelemetry": startup_summary(m.startup_otel),
                    "without_opentelemetry": startup_summary(m.startup_plain),
                    "per_pillar": pillar_summary(m)},
        "otel_setup": otel_setup_document(m.otel_setup),
    }


def pillar_summary(m: Measured) -> dict[str, Any]:
    """Each step of PILLAR_STEPS that was measured, keyed by what is on."""
    keys = {"plain": "off", "otel": "traces+metrics+logs"}
    return {keys.get(mode, mode): startup_summary(stats) for mode, _ in PILLAR_STEPS
            if (stats := m.pillar_stats(mode)) is not None}


def _count_json(count: FindingCount) -> dict[str, Any]:
    if count.total is None:
        return {"status": "not-run", "reason": count.not_run}
    return {"status": "ok", "total": count.total, "by_severity": dict(count.by_severity)}


def compare_json(comparison: Comparison) -> str:
    return json.dumps(document(comparison), indent=2) + "\n"


# ---- compare.md -----------------------------------------------------------------------------------

def markdown(comparison: Comparison) -> str:
    names = comparison.column_names
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
        cells = [f"**{markdown_cell(c.text if c.text.startswith('✘') else '✘ ' + c.text)}**" if c.finding
                 else markdown_cell(c.text) for c in row.cells]
        lines.append(f"| {markdown_cell(row.label)} | " + " | ".join(cells) + " |")
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
                  f"{layer.files:,} | `{markdown_cell(made_by(layer, 100))}` |"
                  for layer in m.layers.largest(5)]
        if m.layers.waste.top:
            wasted = ", ".join(f"`{p.path}` {human_bytes(p.bytes)}" for p in m.layers.waste.top[:3])
            lines += ["", f"Most wasted: {wasted}"]
        lines.append("")
    if comparison.skipped or comparison.unmeasured:
        lines += ["## Not compared", ""]
        lines += [f"- prod flavor `{flavor}`: {why}" for flavor, why in comparison.skipped]
        lines += [f"- `{n.name}` ({n.image}): {markdown_cell(n.reason)}"
                  for n in comparison.unmeasured]
        lines.append("")
    reasons = not_run_reasons(comparison)
    if reasons:
        lines += ["## Not run", ""] + [f"- {markdown_cell(reason)}" for reason in reasons] + [""]
    lines += [
        "## How these were measured", "",
        "- Size, uncompressed: `docker image inspect` Size.",
        f"- Size, compressed: {COMPRESSED_NOTE}.",
        f"- Wasted: {WASTE_NOTE}.",
        "- Packages: Trivy's CycloneDX SBOM (the scanner's `sbom.cdx.json` when it is current).",
        "- Parity: `/opt/venv/requirements.lock` of prod against dev's, and the venvs' Python.",
        "- Security: the scanner's `scan.json` for this exact image id (else \"not run\"); the "
        "attack surface from the exported filesystem and image config.",
        "- Startup: container create → running → first 2xx on the health path (without one: the "
        "port accepts connections) → first span at the OTLP receiver; OTel on exports traces, "
        "metrics and logs (the image's defaults), OTel off starts the app command directly with "
        "OTEL_SDK_DISABLED=true, and is checked to export nothing.",
        "- Per pillar: the same start-up with traces only (`OTEL_METRICS_EXPORTER=none`, "
        "`OTEL_LOGS_EXPORTER=none`), then traces + metrics (`OTEL_LOGS_EXPORTER=none`); each row "
        "adds one pillar to the row before, from all off to all on.",
        f"- naive: `templates/naive.Dockerfile.j2` (built in {comparison.naive_seconds:.0f}s this run).",
        "- yours: the service folder's own `Dockerfile`, built and run as it is (when there is one).",
        "",
    ]
    return "\n".join(lines)


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
        "per_pillar": {c.service: {m.column.name: pillar_summary(m) for m in c.columns}
                       for c in bench.comparisons},
        # Issue 14: each figure with its goal next to it (at most `goal`); met is null when the
        # figure could not be measured.
        "goals": {c.service: [{**asdict(goal), "met": goal.met} for goal in otel_goals(c)]
                  for c in bench.comparisons},
        "compare_reports": [str(path) for path in compare_files],
        "toolkit": {
            "cold_build": {**_build_json(bench.cold_build), "cache": "disabled (nocache)"},
            "warm_rebuild": {**_build_json(bench.warm_rebuild), "edited": bench.edited_file,
                             "dependency_layers_cached": bench.dependencies_cached},
            "scan": ({"status": "ok", "images": [asdict(s) for s in bench.scans]} if bench.scans
                     else {"status": "not-run", "reason": bench.scan_not_run or "no image"}),
            "naive_build_seconds": {c.service: c.naive_seconds for c in bench.comparisons},
            "build_all": _build_all_json(bench),
        },
    }


# The goals: BuildKit builds everything in at most half the legacy builder's time; a rebuild
# after a one-line app change takes at most 5% of a cold build.
BUILD_ALL_GOAL = 0.5
WARM_REBUILD_GOAL = 0.05


def _build_all_json(bench: Bench) -> dict[str, Any]:
    build_all = bench.build_all
    if build_all is None:
        return {"status": "not-run", "reason": bench.build_all_not_run}
    return {
        "status": "ok",
        "targets": list(build_all.targets),
        "cache": "none: no layer cache, cache mounts emptied",
        "legacy_s": build_all.legacy_s,
        "buildkit_sequential_s": build_all.buildkit_sequential_s,
        "buildkit_s": build_all.buildkit_s,
        "buildkit_how": "docker buildx bake of every target at once",
        "ratio_buildkit_over_legacy": build_all.ratio,
        "goal": BUILD_ALL_GOAL,
        "goal_met": build_all.ratio <= BUILD_ALL_GOAL,
        "warm_rebuild_over_cold": (round(bench.warm_rebuild.seconds / bench.cold_build.seconds, 3)
                                   if bench.cold_build.seconds else None),
        "warm_rebuild_goal": WARM_REBUILD_GOAL,
        "dependency_added": {"requirement": build_all.dependency,
                             "legacy_s": build_all.dependency_legacy_s,
                             "buildkit_cache_mount_s": build_all.dependency_buildkit_s},
    }


def bench_json(bench: Bench, compare_files: Sequence[Path] = ()) -> str:
    return json.dumps(bench_document(bench, compare_files), indent=2) + "\n"
