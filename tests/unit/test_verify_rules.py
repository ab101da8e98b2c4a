"""The span rules of `verify`, on hand-made spans: no engine needed."""

from __future__ import annotations

from dataclasses import replace

from builder.engine.containers import NotReadyError
from builder.project import Project
from builder.verify.ownership import judge_otel_setup
from builder.verify.receiver import ReceivedSpan, SpanEvent
from builder.verify.spans import (
    SmokeResponse,
    WorkerCoverage,
    check_spans,
    not_ready_checks,
    process_of,
    worker_check,
)


def span(name: str, kind: str, span_id: str, parent: str | None = None, status: str = "UNSET",
         attributes: dict | None = None, events: tuple[SpanEvent, ...] = (),
         trace: str = "t1") -> ReceivedSpan:
    return ReceivedSpan(trace, span_id, parent, name, kind, status, "", 1, 2, attributes or {},
                        events, {"service.name": "backend-flask", "io.imagewright.variant": "prod"},
                        "scope", 0.0, {})


def responses(project: Project) -> list[SmokeResponse]:
    spec = project.service("backend-flask")
    return [SmokeResponse(smoke, smoke.status) for smoke in spec.smoke]


def complete_spans() -> list[ReceivedSpan]:
    boom = (SpanEvent("exception", {"exception.type": "RuntimeError"}),)
    return [
        span("GET /api/activities/home", "SERVER", "a", attributes={"http.route": "/api/activities/home"}),
        span("home-activities.mock-data", "INTERNAL", "b", "a", attributes={"app.result_length": 2}),
        span("GET /api/fail", "SERVER", "c", trace="t2", status="ERROR", events=boom,
             attributes={"http.route": "/api/fail"}),
        span("fail.on-purpose", "INTERNAL", "d", "c", trace="t2", status="ERROR", events=boom,
             attributes={"app.reason": "x"}),
    ]


def test_complete_telemetry_passes(project: Project) -> None:
    checks = check_spans(project.service("backend-flask"), "prod", responses(project), complete_spans())
    assert all(check.passed for check in checks), [c for c in checks if not c.passed]


def test_missing_manual_span_and_error_event_fail(project: Project) -> None:
    spans = [s for s in complete_spans() if s.name != "home-activities.mock-data"]
    spans[-1] = span("fail.on-purpose", "INTERNAL", "d", "c", trace="t2", attributes={"a": 1})
    spans[-2] = span("GET /api/fail", "SERVER", "c", trace="t2", attributes={"http.route": "/api/fail"})
    failed = [c.description for c in check_spans(project.service("backend-flask"), "prod",
                                                 responses(project), spans) if not c.passed]
    assert failed == [
        "GET /api/activities/home: manual span 'home-activities.mock-data' inside the request span, "
        "with attributes",
        "GET /api/fail: error recorded (status ERROR + exception event)",
    ]


def test_wrong_variant_attribute_fails(project: Project) -> None:
    checks = check_spans(project.service("backend-flask"), "dev", responses(project), complete_spans())
    assert [c.description for c in checks if not c.passed] == ["resource io.imagewright.variant = dev"]


# What a Flask app that builds its own TracerProvider logs under the image's wrapper (SDK 1.45).
OWN_SETUP_LOG = """\
[2026-11-29 05:10:01 +0000] [1] [INFO] Starting gunicorn 27.0.1
Overriding of current TracerProvider is not allowed
Attempting to instrument Flask app while already instrumented
Attempting to instrument while already instrumented
Overriding of current TracerProvider is not allowed
"""


def test_an_apps_own_setup_under_the_wrapper_is_dead_code() -> None:
    setup = judge_otel_setup("auto", OWN_SETUP_LOG, complete_spans())
    assert setup.dead_code and setup.app_sets_up_otel and setup.owner == "wrapper"
    assert setup.evidence == (
        'the app installs a TracerProvider of its own (the SDK refused it: "Overriding of '
        'current TracerProvider is not allowed")',
        'the app instruments its Flask app itself, a second time ("Attempting to instrument '
        'Flask app while already instrumented")',
        'the app instruments a library itself, a second time ("Attempting to instrument while '
        'already instrumented")',
    )
    advice = setup.advice("images/svc/image.yaml")
    assert "dead code" in advice and "`otel: {mode: app}` in images/svc/image.yaml" in advice


def test_the_wrapper_alone_is_no_finding() -> None:
    setup = judge_otel_setup("auto", "[INFO] Booting worker with pid: 7\n", complete_spans())
    assert setup.evidence == () and not setup.dead_code and setup.advice("x") == ""


def test_spans_without_the_images_resource_come_from_the_apps_own_provider() -> None:
    own = [replace(s, resource={"service.name": "unknown_service"}, scope_name="app")
           for s in complete_spans()[:2]]
    setup = judge_otel_setup("auto", "", [*complete_spans()[2:], *own])
    assert setup.evidence == ("2 of 4 spans lack the image's resource attributes "
                              "(io.imagewright.variant from OTEL_RESOURCE_ATTRIBUTES): they come "
                              "from a TracerProvider the app built with a Resource of its own "
                              "(scopes: app)",)


def test_app_mode_expects_the_apps_own_spans() -> None:
    assert judge_otel_setup("app", "", complete_spans()).advice("x") == ""
    silent = judge_otel_setup("app", "", [])
    assert silent.owner == "app" and "must set up OpenTelemetry itself" in silent.advice("x")


def test_workers_are_told_apart_by_process_pid() -> None:
    spans = [replace(s, resource={**s.resource, "process.pid": pid})
             for s, pid in zip(complete_spans(), (7, 8, 7, 8), strict=True)]
    assert [process_of(s) for s in spans[:2]] == ["process.pid=7", "process.pid=8"]
    assert process_of(complete_spans()[0]) is None
    both = WorkerCoverage(2, ("process.pid=7", "process.pid=8"), 8)
    one = WorkerCoverage(3, ("process.pid=7",), 48)
    assert worker_check(both).passed
    check = worker_check(one)
    assert not check.passed and check.detail == "1 distinct across 48 requests: process.pid=7"
    assert "3 worker processes" in check.description


def test_a_service_that_never_gets_ready_fails_every_expected_check(project: Project) -> None:
    spec = project.service("backend-flask")
    error = NotReadyError("/api/health answers 2xx within 60s",
                          "the container exited with code 127 first",
                          "imagewright entrypoint: 'gunicorn' is not in the image")
    checks = not_ready_checks(spec, "prod", error)
    assert all(not check.passed for check in checks)
    assert checks[0].description == "/api/health answers 2xx within 60s"
    assert "exited with code 127" in checks[0].detail and "'gunicorn' is not" in checks[0].detail
    described = [check.description for check in checks]
    assert "GET /api/activities/home: server span with http.route=/api/activities/home" in described
    assert "traces reach the receiver" in described


def test_no_answer_at_all_is_a_failed_check_with_the_reason(project: Project) -> None:
    spec = project.service("backend-flask")
    reset = [SmokeResponse(smoke, 0, "Connection reset by peer") for smoke in spec.smoke]
    check = check_spans(spec, "prod", reset, complete_spans())[0]
    assert not check.passed and check.detail == "no answer: Connection reset by peer"
