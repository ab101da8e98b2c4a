"""`reports/<service>/<variant>/otel.json`: what verify proved and how fast the image starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from builder.inspect.checks import CheckResult
from builder.verify.run import StartupProfile
from builder.verify.spans import VerifyReport
from builder.verify.startup import StartupStats

STARTUP_PHASES = ("running_ms", "healthy_ms", "first_span_ms")
OTEL_REPORT = "otel.json"


def startup_summary(stats: StartupStats) -> dict[str, Any]:
    phases = {phase.removesuffix("_ms"): timing.summary()
              for phase in STARTUP_PHASES if (timing := stats.timing(phase))}
    memory = sorted(run.memory_bytes for run in stats.runs)
    return {"runs": len(stats.runs), **phases,
            "idle_memory_bytes": memory[len(memory) // 2] if memory else None}


def received_counts(report: VerifyReport) -> dict[str, dict[str, int]]:
    """What reached the receiver, per pillar: export requests and what they carried."""
    requests = dict(report.export_requests)
    return {
        "traces": {"export_requests": requests.get("traces", 0), "spans": len(report.spans),
                   "traces": len({span.trace_id for span in report.spans})},
        "metrics": {"export_requests": requests.get("metrics", 0),
                    "metrics": len({metric.name for metric in report.metrics}),
                    "data_points": sum(len(metric.points) for metric in report.metrics)},
        "logs": {"export_requests": requests.get("logs", 0), "records": len(report.logs),
                 "records_in_a_trace": sum(1 for record in report.logs if record.trace_id)},
    }


def otel_document(report: VerifyReport, profile: StartupProfile,
                  promises: Sequence[CheckResult]) -> dict[str, Any]:
    otel, plain = profile.otel, profile.plain
    with_otel, without = otel.timing("healthy_ms"), plain.timing("healthy_ms")
    ratio = round(with_otel.median / without.median, 2) if with_otel and without else None
    return {
        "service": report.service,
        "variant": report.variant,
        "image": report.image,
        "verified": report.ok,
        "checks": [asdict(check) for check in report.checks],
        "spans_received": len(report.spans),
        "received": received_counts(report),
        "metric_names": sorted({metric.name for metric in report.metrics}),
        "promises": [asdict(result) for result in promises],
        "startup": {"with_opentelemetry": startup_summary(otel),
                    "without_wrapper": startup_summary(plain),
                    "healthy_ratio_otel_over_plain": ratio},
        # OpenTelemetry started in-process as the entrypoint starts it (its sitecustomize).
        "import_time_at_otel_start_ms": [asdict(cost) for cost in profile.imports],
        "protobuf_backend": profile.protobuf,
        "notes": "Times are from container create. 'without_wrapper' starts the app command "
                 "directly (no opentelemetry-instrument, no SDK import); OTEL_SDK_DISABLED=true "
                 "through the image's entrypoint skips the wrapper too. 'with_opentelemetry' starts it "
                 "in-process (IMAGEWRIGHT_OTEL_START=wrapper: under opentelemetry-instrument).",
    }
