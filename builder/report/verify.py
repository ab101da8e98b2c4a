"""Report writers shared by commands: JSON and Markdown, always written atomically."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from builder.core.files import atomic_write
from builder.verify.smoke import ImportCost, StartupStats, VerifyReport

STARTUP_PHASES = ("running_ms", "healthy_ms", "first_span_ms")


def markdown_cell(text: str) -> str:
    """Safe inside a Markdown table cell or list item: no pipes, no line breaks."""
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def startup_summary(stats: StartupStats) -> dict[str, Any]:
    phases = {phase.removesuffix("_ms"): timing.summary()
              for phase in STARTUP_PHASES if (timing := stats.timing(phase))}
    memory = sorted(run.memory_bytes for run in stats.runs)
    return {"runs": len(stats.runs), **phases,
            "idle_memory_bytes": memory[len(memory) // 2] if memory else None}


def otel_document(report: VerifyReport, otel: StartupStats, plain: StartupStats,
                  imports: list[ImportCost], protobuf: str) -> dict[str, Any]:
    with_otel, without = otel.timing("healthy_ms"), plain.timing("healthy_ms")
    ratio = round(with_otel.median / without.median, 2) if with_otel and without else None
    return {
        "service": report.service,
        "variant": report.variant,
        "image": report.image,
        "verified": report.ok,
        "checks": [asdict(check) for check in report.checks],
        "spans_received": len(report.spans),
        "startup": {"with_opentelemetry": startup_summary(otel),
                    "without_wrapper": startup_summary(plain),
                    "healthy_ratio_otel_over_plain": ratio},
        "import_time_under_instrument_ms": [asdict(cost) for cost in imports],
        "protobuf_backend": protobuf,
        "notes": "Times are from container create. 'without_wrapper' starts the app command "
                 "directly (no opentelemetry-instrument, no SDK import); OTEL_SDK_DISABLED=true "
                 "through the image's entrypoint skips the wrapper too.",
    }
