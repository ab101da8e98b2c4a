"""The span rules of `verify`, on hand-made spans: no engine needed."""

from __future__ import annotations

from builder.project import Project
from builder.verify.receiver import ReceivedSpan, SpanEvent
from builder.verify.spans import SmokeResponse, check_spans


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
