"""Metrics and logs from the real images at the tool's own receiver, next to the traces: what
arrives, that it belongs to the request that made it, that each pillar switches off on its own,
and that stdout logging is still there. Asserted on what the receiver decoded, never on log text
alone."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from builder.build.images import BuildResult
from builder.engine.client import Engine
from builder.engine.containers import running_service, wait_until_ready
from builder.project import Project
from builder.spec.service import VARIANTS
from builder.verify.receiver import OtlpReceiver, ReceivedLog, ReceivedMetric, ReceivedSpan
from builder.verify.spans import (
    FAST_METRICS,
    TEST_API_KEY,
    VerifyReport,
    otel_env,
    send,
    verify_image,
)
from tests.support.samples import SERVICES

pytestmark = pytest.mark.integration
Built = dict[tuple[str, str], BuildResult]


@pytest.fixture(scope="module")
def verified(project: Project, built: Built, engine: Engine) -> Callable[[str, str], VerifyReport]:
    """One verify run per sample service and variant, shared by the tests below."""
    cache: dict[tuple[str, str], VerifyReport] = {}

    def report(service: str, variant: str) -> VerifyReport:
        if (service, variant) not in cache:
            cache[(service, variant)] = verify_image(engine, project.service(service), variant,
                                                     built[(service, variant)].tags[0])
        return cache[(service, variant)]

    return report


def server_of(spans: tuple[ReceivedSpan, ...], route: str) -> ReceivedSpan:
    return next(s for s in spans if s.kind == "SERVER" and s.attributes.get("http.route") == route)


def duration_points(metrics: tuple[ReceivedMetric, ...], route: str) -> list[tuple[str, int, int]]:
    return [(m.unit, int(p.attributes.get("http.response.status_code") or 0), p.count or 0)
            for m in metrics if m.name == "http.server.request.duration" and m.kind == "histogram"
            for p in m.points if p.attributes.get("http.route") == route]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_metrics_arrive_with_the_route_and_the_images_resource(
        service: str, variant: str, project: Project, verified: Callable[[str, str], VerifyReport]) -> None:
    report = verified(service, variant)
    assert report.ok, [c.description for c in report.checks if not c.passed]
    for smoke in project.service(service).smoke:
        if smoke.route and smoke.status < 500:
            points = duration_points(report.metrics, smoke.route)
            assert any(unit == "s" and status == smoke.status and count >= 1
                       for unit, status, count in points), (smoke.route, points)
    memory = [p.value for m in report.metrics if m.name == "process.memory.usage" for p in m.points]
    assert memory and all(isinstance(v, int) and v > 10_000_000 for v in memory), memory
    threads = [p.value for m in report.metrics if m.name == "process.thread.count" for p in m.points]
    assert threads and min(v for v in threads if v is not None) >= 1
    assert {m.resource["service.name"] for m in report.metrics} == {service}
    assert {m.resource["io.imagewright.variant"] for m in report.metrics} == {variant}
    # The host-wide system.* metrics are left out on purpose: they describe the host, not us.
    assert not [m.name for m in report.metrics if m.name.startswith("system.")]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_smoke_request_logs_under_its_own_trace_and_span(
        service: str, variant: str, project: Project, verified: Callable[[str, str], VerifyReport]) -> None:
    report = verified(service, variant)
    routes = [smoke.route for smoke in project.service(service).smoke if smoke.route]
    traces = set()
    for route in routes:
        server = server_of(report.spans, route)
        trace = {s.span_id: s for s in report.spans if s.trace_id == server.trace_id}
        records: list[ReceivedLog] = [r for r in report.logs if r.trace_id == server.trace_id]
        assert records, f"{route}: no log record in trace {server.trace_id}"
        assert all(r.span_id in trace for r in records), [(r.body, r.span_id) for r in records]
        assert all(r.body and r.severity_number > 0 for r in records)
        traces.add(server.trace_id)
    assert len(traces) == len(routes), "each request has a trace of its own"
    assert {r.resource["service.name"] for r in report.logs} == {service}


def test_honeycomb_gets_a_metrics_dataset_and_the_key_for_every_pillar(
        project: Project, verified: Callable[[str, str], VerifyReport]) -> None:
    report = verified("backend-flask", "prod")
    metric_headers = {(k, v) for m in report.metrics for k, v in m.headers.items()}
    assert ("x-honeycomb-team", TEST_API_KEY) in metric_headers
    assert ("x-honeycomb-dataset", "backend-flask-metrics") in metric_headers
    log_headers = {(k, v) for r in report.logs for k, v in r.headers.items()}
    assert ("x-honeycomb-team", TEST_API_KEY) in log_headers
    assert not [k for k, _ in log_headers | set(report.export_headers) if k == "x-honeycomb-dataset"]


def test_the_metrics_dataset_can_be_named(project: Project, built: Built, engine: Engine) -> None:
    report = verify_image(engine, project.service("backend-fastapi"), "prod",
                          built[("backend-fastapi", "prod")].tags[0],
                          extra_env={"HONEYCOMB_METRICS_DATASET": "notifications-metrics"})
    assert report.ok
    datasets = {m.headers.get("x-honeycomb-dataset") for m in report.metrics}
    assert datasets == {"notifications-metrics"}


@pytest.mark.parametrize(("service", "variant", "pillar"), [
    ("backend-flask", "prod", "metrics"), ("backend-fastapi", "dev", "logs"),
    ("backend-fastapi", "prod", "metrics"), ("backend-flask", "dev", "logs"),
])
def test_each_pillar_switches_off_alone_and_verify_says_so_in_one_line(
        service: str, variant: str, pillar: str, project: Project, built: Built,
        engine: Engine) -> None:
    report = verify_image(engine, project.service(service), variant, built[(service, variant)].tags[0],
                          extra_env={f"OTEL_{pillar.upper()}_EXPORTER": "none"}, span_timeout=5)
    assert [c.description for c in report.checks if not c.passed] == [f"{pillar} reach the receiver"]
    assert dict(report.export_requests)[pillar] == 0
    assert report.spans and (report.metrics if pillar == "logs" else report.logs)


def test_stdout_logging_stays_while_the_same_record_is_exported(
        project: Project, built: Built, engine: Engine) -> None:
    spec = project.service("backend-flask")
    home = next(smoke for smoke in spec.smoke if smoke.status == 200)
    with OtlpReceiver() as receiver:
        env = {**otel_env(receiver), **FAST_METRICS}
        with running_service(engine, built[("backend-flask", "prod")].tags[0], spec.port, env=env,
                             purpose="test") as running:
            wait_until_ready(running, spec.health_path, timeout=60)
            assert send(running, home).status == 200
            telemetry = receiver.wait_for(
                lambda t: any(r.trace_id for r in t.logs), timeout=15)
            output = running.logs(tail=50)
    record = next(r for r in telemetry.logs if r.trace_id)
    assert isinstance(record.body, str) and record.body in output
    assert f"GET {home.path} HTTP/1.1\" 200" in output, "gunicorn's access log is still there"
