"""`reports/<service>/<variant>/otel.json`: what verify proved and how fast the image starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from builder.inspect.checks import CheckResult
from builder.verify.ownership import OtelSetup
from builder.verify.run import StartupProfile
from builder.verify.spans import VerifyReport
from builder.verify.startup import StartupStats

STARTUP_PHASES = ("running_ms", "healthy_ms", "first_span_ms")
OTEL_REPORT = "otel.json"


def startup_summary(stats: StartupStats) -> dict[str, Any]:
    phases = {phase.removesuffix("_ms"): timing.summary()
              for phase in STARTUP_PHASES if (timing := stats.timing(phase))}
    memory = sorted(run.memory_bytes for run in stats.runs)
    summary: dict[str, Any] = {"runs": len(stats.runs), **phases,
                               "idle_memory_bytes": memory[len(memory) // 2] if memory else None}
    if stats.mode == "plain":
        summary |= {"really_off": stats.really_off, "leaked_spans": stats.leaked_spans}
    if stats.problem:
        summary["problem"] = stats.problem
    return summary


def otel_setup_document(setup: OtelSetup | None) -> dict[str, Any] | None:
    if setup is None:
        return None
    return {"mode": setup.mode, "owner": setup.owner, "app_sets_up_otel": setup.app_sets_up_otel,
            "app_setup_is_dead_code": setup.dead_code, "evidence": list(setup.evidence),
            "summary": setup.summary()}


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


def otel_document(report: VerifyReport, profile: StartupProfile | None,
                  promises: Sequence[CheckResult]) -> dict[str, Any]:
    """`profile` is None when the service never became ready (or did not stay up)."""
    startup: dict[str, Any] | None = None
    if profile is not None:
        otel, plain = profile.otel, profile.plain
        with_otel, without = otel.timing("healthy_ms"), plain.timing("healthy_ms")
        ratio = round(with_otel.median / without.median, 2) if with_otel and without else None
        startup = {"with_opentelemetry": startup_summary(otel),
                   "without_wrapper": startup_summary(plain),
                   "healthy_ratio_otel_over_plain": ratio}
    workers = report.workers
    return {
        "service": report.service,
        "variant": report.variant,
        "image": report.image,
        "verified": report.ok,
        "ready": report.ready,
        "checks": [asdict(check) for check in report.checks],
        "spans_received": len(report.spans),
        "received": received_counts(report),
        "metric_names": sorted({metric.name for metric in report.metrics}),
        "promises": [asdict(result) for result in promises],
        "otel_setup": otel_setup_document(report.otel_setup),
        "workers": None if workers is None else {
            "processes": workers.workers, "seen": list(workers.processes),
            "requests": workers.requests, "ok": workers.ok},
        "startup": startup,
        # OpenTelemetry started in-process as the entrypoint starts it (its sitecustomize).
        "import_time_at_otel_start_ms": ([asdict(cost) for cost in profile.imports]
                                         if profile else []),
        "protobuf_backend": profile.protobuf if profile else None,
        "notes": "Times are from container create; 'healthy' is the first 2xx on the health path, "
                 "or without one the port accepting connections. 'without_wrapper' starts the app "
                 "command directly (no opentelemetry-instrument, no SDK import by the image) with "
                 "OTEL_SDK_DISABLED=true; 'really_off' is false when spans arrived all the same. "
                 "OTEL_SDK_DISABLED=true through the image's entrypoint skips the wrapper too. "
                 "'with_opentelemetry' starts it in-process (IMAGEWRIGHT_OTEL_START=wrapper: under "
                 "opentelemetry-instrument).",
    }
