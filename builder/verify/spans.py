"""Prove an image's telemetry: run it against our own OTLP receiver and check what arrives.

`check_spans` is pure (spans in, checks out) so the rules are testable without an engine, like
`check_metrics` (verify/metrics.py) and `check_logs` (verify/logs.py); `verify_image` starts the
real image through the engine's runner and applies all three.
"""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from builder.engine.client import Engine
from builder.engine.containers import (
    HOST_ALIAS,
    RunningService,
    running_service,
    wait_until_answers,
)
from builder.spec.service import ServiceSpec, SmokeRequest
from builder.verify.checks import Check, SmokeResponse, server_span
from builder.verify.logs import check_logs
from builder.verify.metrics import check_metrics
from builder.verify.receiver import (
    OtlpReceiver,
    ReceivedLog,
    ReceivedMetric,
    ReceivedSpan,
    Telemetry,
)

__all__ = ["Check", "SmokeResponse", "VerifyReport", "check_spans", "check_telemetry",
           "otel_env", "send", "server_span", "verify_image"]

# Verify wants spans and log records within a second, not the batch processors' 5 s and 1 s
# defaults. Metrics are exported on a timer (60 s by default): verify_image shortens it too, but
# start-up measurements keep it, since a shorter one would cost the app more than users pay.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BLRP_SCHEDULE_DELAY": "200"}
FAST_METRICS = {"OTEL_METRIC_EXPORT_INTERVAL": "500"}
TEST_API_KEY = "imagewright-verify-key"


@dataclass(frozen=True)
class VerifyReport:
    service: str
    variant: str
    image: str
    checks: tuple[Check, ...]
    spans: tuple[ReceivedSpan, ...]
    export_headers: tuple[tuple[str, str], ...]
    metrics: tuple[ReceivedMetric, ...] = ()
    logs: tuple[ReceivedLog, ...] = ()
    # (pillar, export requests decoded) for traces, metrics and logs
    export_requests: tuple[tuple[str, int], ...] = ()

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)


def check_spans(spec: ServiceSpec, variant: str, responses: Sequence[SmokeResponse],
                spans: Sequence[ReceivedSpan]) -> list[Check]:
    """What a correctly instrumented image of `spec` must have sent for these requests."""
    checks: list[Check] = []
    names = sorted({s.name for s in spans})
    for response in responses:
        smoke = response.request
        label = f"{smoke.method} {smoke.path}"
        checks.append(Check(f"{label} answers {smoke.status}", response.status == smoke.status,
                            f"got {response.status}"))
        if smoke.route is None:
            continue
        server = server_span(spans, smoke.route)
        checks.append(Check(f"{label}: server span with http.route={smoke.route}", server is not None,
                            f"received spans: {names}"))
        if server is None:
            continue
        trace = [s for s in spans if s.trace_id == server.trace_id]
        for name in smoke.spans:
            child = next((s for s in trace if s.name == name), None)
            checks.append(Check(
                f"{label}: manual span '{name}' inside the request span, with attributes",
                child is not None and child.parent_span_id is not None and bool(child.attributes),
                f"trace has: {[s.name for s in trace]}"))
        if smoke.status >= 500:
            failed = [s for s in trace if s.status_code == "ERROR"
                      and any(e.name == "exception" for e in s.events)]
            checks.append(Check(f"{label}: error recorded (status ERROR + exception event)",
                                bool(failed), f"statuses: {[(s.name, s.status_code) for s in trace]}"))
    services = {s.service_name for s in spans}
    checks.append(Check(f"resource service.name = {spec.name}", services == {spec.name},
                        f"got {sorted(map(str, services))}"))
    variants = {s.resource.get("io.imagewright.variant") for s in spans}
    checks.append(Check(f"resource io.imagewright.variant = {variant}", variants == {variant},
                        f"got {sorted(map(str, variants))}"))
    return checks


def check_telemetry(spec: ServiceSpec, variant: str, responses: Sequence[SmokeResponse],
                    telemetry: Telemetry) -> list[Check]:
    """The three pillars' rules, in the order verify shows them: traces, metrics, logs."""
    spans = telemetry.spans
    traces = Check("traces reach the receiver", bool(spans),
                   f"{len(spans)} spans in {len({s.trace_id for s in spans})} traces" if spans else
                   "no span arrived: OTEL_TRACES_EXPORTER=none, or the export failed "
                   "(the app's log says why)")
    return [traces, *check_spans(spec, variant, responses, spans),
            *check_metrics(spec, variant, responses, telemetry.metrics),
            *check_logs(spec, variant, responses, telemetry.logs, spans)]


def send(service: RunningService, smoke: SmokeRequest) -> SmokeResponse:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(service.base_url + smoke.path, method=smoke.method)
    try:
        with opener.open(request, timeout=10) as response:
            return SmokeResponse(smoke, response.status)
    except urllib.error.HTTPError as error:
        return SmokeResponse(smoke, error.code)


def otel_env(receiver: OtlpReceiver, endpoint: str | None = None) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint or f"http://{HOST_ALIAS}:{receiver.port}",
            "HONEYCOMB_API_KEY": TEST_API_KEY, **FAST_EXPORT}


def verify_image(engine: Engine, spec: ServiceSpec, variant: str, image: str, *,
                 endpoint: str | None = None, extra_env: dict[str, str] | None = None,
                 span_timeout: float = 15, health_timeout: float = 60) -> VerifyReport:
    """Run `image`, send the spec's smoke requests, and check the spans, metrics and log records
    that reach the receiver.

    `endpoint` overrides where the app exports to (tests point it somewhere wrong on purpose).
    `span_timeout` bounds the wait for all three pillars.
    """
    with OtlpReceiver() as receiver:
        env = {**otel_env(receiver, endpoint), **FAST_METRICS, **(extra_env or {})}
        with running_service(engine, image, spec.port, env=env, hardened=variant == "prod") as running:
            wait_until_answers(running, spec.health_path, timeout=health_timeout)
            responses = [send(running, smoke) for smoke in spec.smoke]
            with contextlib.suppress(TimeoutError):  # the checks below say what is missing
                receiver.wait_for(
                    lambda telemetry: all(check.passed for check in
                                          check_telemetry(spec, variant, responses, telemetry)),
                    timeout=span_timeout)
            logs = running.logs(tail=15)
        telemetry = receiver.telemetry()
        checks = check_telemetry(spec, variant, responses, telemetry)
        if not (telemetry.spans or telemetry.metrics or telemetry.logs):
            checks.append(Check("the app's log (nothing was exported)", False, logs))
        headers = sorted({(k, v) for s in telemetry.spans for k, v in s.headers.items()
                          if k.startswith("x-honeycomb")})
        requests = (("traces", receiver.requests), ("metrics", receiver.metrics_requests),
                    ("logs", receiver.logs_requests))
        return VerifyReport(spec.name, variant, image, tuple(checks), telemetry.spans,
                            tuple(headers), telemetry.metrics, telemetry.logs, requests)


# ---- startup, measured --------------------------------------------------------------------------
