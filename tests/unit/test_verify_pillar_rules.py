"""The metrics and log rules of `verify`, and all three pillars together, on hand-made telemetry."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from builder.project import Project
from builder.report.verify import otel_document
from builder.verify.logs import check_logs
from builder.verify.metrics import PROCESS_METRICS, check_metrics
from builder.verify.receiver import (
    AttributeValue,
    MetricPoint,
    ReceivedLog,
    ReceivedMetric,
    Telemetry,
)
from builder.verify.run import StartupProfile
from builder.verify.spans import VerifyReport, check_telemetry
from builder.verify.startup import StartupStats
from tests.unit.test_verify_rules import complete_spans, responses

RESOURCE: dict[str, AttributeValue] = {"service.name": "backend-flask",
                                       "io.imagewright.variant": "prod"}
HOME = "/api/activities/home"


def metric(name: str, unit: str, *points: dict[str, AttributeValue], kind: str = "sum",
           resource: dict[str, AttributeValue] | None = None) -> ReceivedMetric:
    histogram = kind == "histogram"
    return ReceivedMetric(name, unit, "", kind, "CUMULATIVE", None if histogram else False,
                          tuple(MetricPoint(attributes, 1, 2, value=None if histogram else 1,
                                            count=1 if histogram else None)
                                for attributes in points or ({},)),
                          resource or RESOURCE, "scope", 0.0, MappingProxyType({}))


def duration(route: str, status: int, unit: str = "s") -> ReceivedMetric:
    return metric("http.server.request.duration", unit,
                  {"http.route": route, "http.response.status_code": status}, kind="histogram")


def complete_metrics() -> list[ReceivedMetric]:
    return [duration(HOME, 200), duration("/api/fail", 500),
            metric("http.server.active_requests", "{request}", {"http.request.method": "GET"}),
            *(metric(expected.name, expected.unit or "") for expected in PROCESS_METRICS)]


def record(body: str, trace_id: str | None, span_id: str | None,
           resource: dict[str, AttributeValue] | None = None) -> ReceivedLog:
    return ReceivedLog(1, 1, 9, "INFO", body, {}, trace_id, span_id, resource or RESOURCE, "app",
                       0.0, MappingProxyType({}))


def complete_logs() -> list[ReceivedLog]:
    # complete_spans(): trace t1 = server a + child b (home), trace t2 = server c + child d (fail)
    return [record("listening", None, None), record("home activities: 2 results", "t1", "b"),
            record("failing on purpose", "t2", "d")]


def failed(checks: list) -> list[str]:
    return [check.description for check in checks if not check.passed]


def test_all_three_pillars_complete_pass(project: Project) -> None:
    telemetry = Telemetry(tuple(complete_spans()), tuple(complete_metrics()), tuple(complete_logs()))
    checks = check_telemetry(project.service("backend-flask"), "prod", responses(project), telemetry)
    assert failed(checks) == []
    descriptions = [check.description for check in checks]
    assert descriptions[0] == "traces reach the receiver"
    assert {"metrics reach the receiver", "logs reach the receiver",
            f"GET {HOME}: metric http.server.request.duration (s) with http.route={HOME}, status 200",
            f"GET {HOME}: log record with the request's trace and span ids",
            "GET /api/fail: log record with the request's trace and span ids"} <= set(descriptions)


@pytest.mark.parametrize(("pillar", "empty"), [
    ("traces", Telemetry((), tuple(complete_metrics()), ())),
    ("metrics", Telemetry(tuple(complete_spans()), (), tuple(complete_logs()))),
    ("logs", Telemetry(tuple(complete_spans()), tuple(complete_metrics()), ())),
])
def test_a_missing_pillar_fails_in_one_readable_line(pillar: str, empty: Telemetry,
                                                     project: Project) -> None:
    checks = check_telemetry(project.service("backend-flask"), "prod", responses(project), empty)
    line = next(c for c in checks if c.description == f"{pillar} reach the receiver")
    assert not line.passed
    assert f"OTEL_{pillar.upper()}_EXPORTER=none" in line.detail
    if pillar != "traces":  # without spans, the span rules (and log correlation) fail too
        assert failed(checks) == [f"{pillar} reach the receiver"]


def test_duration_metric_needs_the_route_the_status_and_seconds(project: Project) -> None:
    spec = project.service("backend-flask")
    for wrong in (duration(HOME, 200, unit="ms"), duration("/api/activities/{id}", 200),
                  duration(HOME, 404)):
        metrics = [wrong, *complete_metrics()[1:]]
        assert failed(check_metrics(spec, "prod", responses(project), metrics)) == [
            f"GET {HOME}: metric http.server.request.duration (s) with http.route={HOME}, status 200"]


def test_a_5xx_route_needs_no_duration_point(project: Project) -> None:
    """Flask's dev server lets the exception through, and its instrumentation then records none."""
    metrics = [m for m in complete_metrics() if m.points[0].attributes.get("http.route") != "/api/fail"]
    assert failed(check_metrics(project.service("backend-flask"), "prod", responses(project),
                                metrics)) == []


def test_missing_process_metrics_and_a_foreign_resource_fail(project: Project) -> None:
    metrics = [m for m in complete_metrics() if m.name != "process.cpu.time"]
    metrics[0] = duration(HOME, 200)
    metrics.append(metric("process.thread.count", "", resource={**RESOURCE,
                                                               "io.imagewright.variant": "dev"}))
    checks = check_metrics(project.service("backend-flask"), "prod", responses(project), metrics)
    assert failed(checks) == [
        "process metrics: process.cpu.time (s), process.memory.usage (By), process.thread.count, "
        "cpython.gc.collections ({collection})",
        "metrics resource service.name = backend-flask, io.imagewright.variant = prod"]
    assert "missing ['process.cpu.time (s)']" in checks[-2].detail


def test_log_records_must_sit_under_a_span_of_the_requests_trace(project: Project) -> None:
    spec, spans = project.service("backend-flask"), complete_spans()
    uncorrelated = [record("listening", None, None),
                    record("home activities: 2 results", "t1", "zz"),  # a span never received
                    record("failing on purpose", "t9", "d")]  # another trace
    checks = check_logs(spec, "prod", responses(project), uncorrelated, spans)
    assert failed(checks) == [f"GET {HOME}: log record with the request's trace and span ids",
                              "GET /api/fail: log record with the request's trace and span ids"]
    assert "'zz'" in checks[1].detail
    assert "no record carries trace id t2" in checks[2].detail


def test_logs_without_the_requests_server_span_cannot_correlate(project: Project) -> None:
    spans = [s for s in complete_spans() if s.name != "GET /api/fail"]
    wrong_service = [*complete_logs(), record("x", None, None, {**RESOURCE,
                                                                "service.name": "other"})]
    checks = check_logs(project.service("backend-flask"), "prod", responses(project),
                        wrong_service, spans)
    assert failed(checks) == [
        "GET /api/fail: log record with the request's trace and span ids",
        "logs resource service.name = backend-flask, io.imagewright.variant = prod"]
    assert "no server span with http.route=/api/fail" in checks[2].detail


def test_otel_json_counts_what_each_pillar_delivered(project: Project) -> None:
    checks = check_telemetry(project.service("backend-flask"), "prod", responses(project),
                             Telemetry(tuple(complete_spans()), tuple(complete_metrics()),
                                       tuple(complete_logs())))
    report = VerifyReport("backend-flask", "prod", "backend-flask:prod", tuple(checks),
                          tuple(complete_spans()), (), tuple(complete_metrics()),
                          tuple(complete_logs()), (("traces", 1), ("metrics", 3), ("logs", 2)))
    profile = StartupProfile(StartupStats("otel"), StartupStats("plain"), [], "upb")
    document = otel_document(report, profile, ())
    assert document["verified"] is True
    assert document["received"] == {
        "traces": {"export_requests": 1, "spans": 4, "traces": 2},
        "metrics": {"export_requests": 3, "metrics": 6, "data_points": 7},
        "logs": {"export_requests": 2, "records": 3, "records_in_a_trace": 2},
    }
    assert "http.server.request.duration" in document["metric_names"]
