"""Prove an image's telemetry: run it against our own OTLP receiver and check what arrives.

`check_spans` is pure (spans in, checks out) so the rules are testable without an engine, like
`check_metrics` (verify/metrics.py) and `check_logs` (verify/logs.py); `verify_image` starts the
real image through the engine's runner and applies all three. What the image does (never ready,
exits, exports nothing) always becomes a failed check, never an exception.
"""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from builder.engine.client import Engine
from builder.engine.containers import (
    HOST_ALIAS,
    NotReadyError,
    RunningService,
    readiness,
    running_service,
    wait_until_ready,
)
from builder.spec.service import ServiceSpec, SmokeRequest
from builder.verify.checks import Check, SmokeResponse, server_span
from builder.verify.logs import check_logs
from builder.verify.metrics import check_metrics
from builder.verify.ownership import OtelSetup, judge_otel_setup
from builder.verify.receiver import (
    OtlpReceiver,
    ReceivedLog,
    ReceivedMetric,
    ReceivedSpan,
    Telemetry,
)

__all__ = ["Check", "SmokeResponse", "VerifyReport", "WorkerCoverage", "check_spans",
           "check_telemetry", "not_ready_checks", "otel_env", "process_of", "send", "server_span",
           "verify_image", "worker_check"]

# Verify wants spans and log records within a second, not the batch processors' 5 s and 1 s
# defaults. Metrics are exported on a timer (60 s by default): verify_image shortens it too, but
# start-up measurements keep it, since a shorter one would cost the app more than users pay.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BLRP_SCHEDULE_DELAY": "200"}
FAST_METRICS = {"OTEL_METRIC_EXPORT_INTERVAL": "500"}
TEST_API_KEY = "imagewright-verify-key"
# A pre-fork server's workers take requests as the kernel hands them out: rounds of concurrent
# requests until every worker has answered one (its spans name its process), or this many rounds.
WORKER_ROUNDS = 12
# The resource attributes that tell one process from another (the SDK re-detects both after fork).
PROCESS_ATTRIBUTES = ("process.pid", "service.instance.id")


@dataclass(frozen=True)
class WorkerCoverage:
    """A pre-fork server's workers against the processes its spans came from."""

    workers: int  # worker processes the server runs (the engine's process list)
    processes: tuple[str, ...]  # distinct process.pid values seen on spans
    requests: int  # requests sent to reach them

    @property
    def ok(self) -> bool:
        return len(self.processes) >= self.workers


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
    # False: the service never became ready, or did not stay up (no start-up to measure)
    ready: bool = True
    otel_setup: OtelSetup | None = None
    workers: WorkerCoverage | None = None

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
                            f"no answer: {response.error}" if response.error
                            else f"got {response.status}"))
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
    if not spec.otel.wrapper:
        # otel.mode app: no wrapper sets up metrics or logs; what the app exports is its choice.
        chosen = Check("metrics and logs: the app's own set-up decides (otel.mode: app)", True,
                       f"{len({m.name for m in telemetry.metrics})} metrics, "
                       f"{len(telemetry.logs)} log records arrived")
        return [traces, *check_spans(spec, variant, responses, spans), chosen]
    return [traces, *check_spans(spec, variant, responses, spans),
            *check_metrics(spec, variant, responses, telemetry.metrics),
            *check_logs(spec, variant, responses, telemetry.logs, spans)]


def process_of(span: ReceivedSpan) -> str | None:
    """Which process sent a span: its resource's process.pid (else service.instance.id)."""
    for key in PROCESS_ATTRIBUTES:
        value = span.resource.get(key)
        if value is not None:
            return f"{key}={value}"
    return None


def worker_check(coverage: WorkerCoverage) -> Check:
    shown = ", ".join(coverage.processes) or "none (no span names its process)"
    return Check(f"spans from every worker of the pre-fork server ({coverage.workers} worker "
                 "processes, told apart by process.pid)", coverage.ok,
                 f"{len(coverage.processes)} distinct across {coverage.requests} requests: {shown}")


def not_ready_checks(spec: ServiceSpec, variant: str, error: NotReadyError,
                     health_timeout: float = 60) -> list[Check]:
    """When the service never became ready: that, and every check it could not get to."""
    log = error.log.strip() or "(empty)"
    checks = [Check(readiness(spec.health_path, spec.port, health_timeout), False,
                    f"{error.reason}; the container's log ends:\n{log}")]
    skipped = [SmokeResponse(smoke, 0, "not sent: the service never became ready")
               for smoke in spec.smoke]
    checks += [Check(check.description, False, "not checked: the service never became ready")
               for check in check_telemetry(spec, variant, skipped, Telemetry())]
    return checks


def send(service: RunningService, smoke: SmokeRequest) -> SmokeResponse:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(service.base_url + smoke.path, method=smoke.method)
    try:
        with opener.open(request, timeout=10) as response:
            return SmokeResponse(smoke, response.status)
    except urllib.error.HTTPError as error:
        return SmokeResponse(smoke, error.code)
    except (OSError, urllib.error.URLError) as error:  # reset, timeout: an answer of sorts
        return SmokeResponse(smoke, 0, str(getattr(error, "reason", error)))


def otel_env(receiver: OtlpReceiver, endpoint: str | None = None) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint or f"http://{HOST_ALIAS}:{receiver.port}",
            "HONEYCOMB_API_KEY": TEST_API_KEY, **FAST_EXPORT}


def verify_image(engine: Engine, spec: ServiceSpec, variant: str, image: str, *,
                 endpoint: str | None = None, extra_env: dict[str, str] | None = None,
                 span_timeout: float = 15, health_timeout: float = 60) -> VerifyReport:
    """Run `image`, send the spec's smoke requests, and check the spans, metrics and log records
    that reach the receiver.

    Never raises for what the image does (never ready, exits, exports nothing): each becomes a
    failed check. `endpoint` overrides where the app exports to (tests point it somewhere wrong
    on purpose). `span_timeout` bounds the wait for all three pillars.
    """
    with OtlpReceiver() as receiver:
        env = {**otel_env(receiver, endpoint), **FAST_METRICS, **(extra_env or {})}
        try:
            with running_service(engine, image, spec.port, env=env,
                                 hardened=variant == "prod") as running:
                wait_until_ready(running, spec.health_path, timeout=health_timeout)
                responses = [send(running, smoke) for smoke in spec.smoke]
                with contextlib.suppress(TimeoutError):  # the checks below say what is missing
                    receiver.wait_for(
                        lambda telemetry: all(check.passed for check in
                                              check_telemetry(spec, variant, responses, telemetry)),
                        timeout=span_timeout)
                coverage = _cover_workers(running, spec, receiver)
                logs = running.logs(tail=400)
                exited = running.exit_code()
        except NotReadyError as error:
            checks = not_ready_checks(spec, variant, error, health_timeout)
            return VerifyReport(spec.name, variant, image, tuple(checks), tuple(receiver.spans()),
                                (), ready=False,
                                otel_setup=judge_otel_setup(spec.otel.mode, error.log, []))
        telemetry = receiver.telemetry()
        checks = check_telemetry(spec, variant, responses, telemetry)
        tail = "\n".join(logs.splitlines()[-15:])
        if not (telemetry.spans or telemetry.metrics or telemetry.logs):
            checks.append(Check("the app's log (nothing was exported)", False, tail))
        if coverage is not None:
            checks.append(worker_check(coverage))
        # Ready is not enough: a pre-fork server listens before its workers load the app.
        checks.append(Check("the container keeps running through the smoke requests",
                            exited is None, f"it exited with code {exited}; its log ends:\n{tail}"))
        headers = sorted({(k, v) for s in telemetry.spans for k, v in s.headers.items()
                          if k.startswith("x-honeycomb")})
        requests = (("traces", receiver.requests), ("metrics", receiver.metrics_requests),
                    ("logs", receiver.logs_requests))
        # The app's warnings reach the container's log, or (with the OTLP log handler on the root
        # logger) the receiver as log records: both are what the app did.
        said = "\n".join([logs, *(str(record.body) for record in telemetry.logs)])
        return VerifyReport(spec.name, variant, image, tuple(checks), telemetry.spans,
                            tuple(headers), telemetry.metrics, telemetry.logs, requests,
                            ready=exited is None,
                            otel_setup=judge_otel_setup(spec.otel.mode, said, telemetry.spans),
                            workers=coverage)


def _cover_workers(running: RunningService, spec: ServiceSpec, receiver: OtlpReceiver
                   ) -> WorkerCoverage | None:
    """With several worker processes: requests until spans arrive from each of them."""
    workers = len(running.workers())
    if workers < 2:
        return None
    probe = next((s for s in spec.smoke if s.route and s.status < 400),
                 next(iter(spec.smoke), None))
    if probe is None or not receiver.spans():  # nothing to tell the workers apart by
        return WorkerCoverage(workers, (), 0)
    sent = 0

    def seen(spans: Sequence[ReceivedSpan]) -> tuple[str, ...]:
        return tuple(sorted({p for span in spans if (p := process_of(span))}))

    with ThreadPoolExecutor(2 * workers) as pool:
        for _ in range(WORKER_ROUNDS):
            list(pool.map(lambda _: send(running, probe), range(2 * workers)))
            sent += 2 * workers
            try:
                receiver.wait_for_spans(lambda spans: len(seen(spans)) >= workers, timeout=1.5)
                break
            except TimeoutError:
                continue
    return WorkerCoverage(workers, seen(receiver.spans()), sent)


# ---- startup, measured --------------------------------------------------------------------------
