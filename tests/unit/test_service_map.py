"""The service map and the checks of services run together, on hand-made spans: no engine needed."""

from __future__ import annotations

import pytest

from builder.project import Project
from builder.verify.receiver import ReceivedSpan
from builder.verify.service_map import (
    UNKNOWN_PEER,
    build_service_map,
    peer_of,
    unjoined_calls,
)
from builder.verify.spans import Check, SmokeResponse
from builder.verify.together import ServiceResponse, check_together

MS = 1_000_000


def span(service: str | None, kind: str, span_id: str, parent: str | None = None, *,
         trace: str = "t1", status: str = "UNSET", ms: float = 1.0, name: str = "",
         attributes: dict | None = None) -> ReceivedSpan:
    resource = {"service.name": service} if service else {}
    return ReceivedSpan(trace, span_id, parent, name or f"{kind} {span_id}", kind, status, "", 10 * MS,
                        10 * MS + int(ms * MS), attributes or {}, (), resource, "scope", 0.0, {})


def call(trace: str, caller: str, callee: str, *, ms: float, client_status: str = "UNSET",
         server_status: str = "UNSET") -> list[ReceivedSpan]:
    """One request into `caller` that calls `callee`: SERVER → CLIENT (caller) → SERVER (callee)."""
    return [
        span(caller, "SERVER", f"{trace}-in", trace=trace),
        span(caller, "CLIENT", f"{trace}-out", f"{trace}-in", trace=trace, ms=ms,
             status=client_status, attributes={"http.url": f"http://{callee}:8000/api/x"}),
        span(callee, "SERVER", f"{trace}-srv", f"{trace}-out", trace=trace, status=server_status),
        span(callee, "INTERNAL", f"{trace}-work", f"{trace}-srv", trace=trace),
    ]


def test_a_client_span_parenting_a_server_span_elsewhere_is_an_edge_with_counts() -> None:
    spans = [*call("a", "web", "api", ms=4), *call("b", "web", "api", ms=10),
             *call("c", "web", "api", ms=6, server_status="ERROR")]
    service_map = build_service_map(spans)
    assert [n.service for n in service_map.nodes] == ["api", "web"]
    [edge] = service_map.edges
    assert (edge.caller, edge.callee, edge.requests, edge.errors) == ("web", "api", 3, 1)
    assert edge.median_ms == pytest.approx(6.0)
    assert service_map.external == ()
    api = next(n for n in service_map.nodes if n.service == "api")
    assert (api.requests, api.errors, api.spans) == (3, 1, 6)
    assert service_map.depths() == {"web": 0, "api": 1}


def test_a_failed_client_span_counts_as_an_error_of_the_edge() -> None:
    service_map = build_service_map(call("a", "web", "api", ms=3, client_status="ERROR"))
    assert service_map.edge("web", "api") is not None
    assert service_map.edge("web", "api").errors == 1  # type: ignore[union-attr]
    assert service_map.edge("api", "web") is None


def test_a_span_delivered_twice_counts_once() -> None:
    spans = call("a", "web", "api", ms=3)
    service_map = build_service_map([*spans, *spans])
    assert service_map.edge("web", "api").requests == 1  # type: ignore[union-attr]
    assert next(n for n in service_map.nodes if n.service == "web").spans == 2


def test_calls_inside_one_service_are_no_edge() -> None:
    spans = [span("web", "CLIENT", "c"), span("web", "SERVER", "s", "c")]
    service_map = build_service_map(spans)
    assert service_map.edges == ()
    # The call left and came back to the same service: no other service answered it.
    assert [c.caller for c in service_map.external] == ["web"]


def test_unanswered_calls_are_grouped_by_peer_and_named_from_their_attributes() -> None:
    spans = [
        span("web", "SERVER", "in"),
        span("web", "CLIENT", "db1", "in", status="ERROR", ms=2,
             attributes={"server.address": "db", "server.port": 5432}),
        span("web", "CLIENT", "db2", "in", ms=4, attributes={"server.address": "db", "server.port": 5432}),
        span("web", "CLIENT", "old", "in", attributes={"net.peer.name": "cache", "net.peer.port": 6379}),
        span("web", "CLIENT", "url", "in", attributes={"http.url": "https://api.example.com/v1/x"}),
        span("web", "CLIENT", "none", "in"),
    ]
    service_map = build_service_map(spans)
    assert service_map.edges == ()
    calls = {c.peer: c for c in service_map.external}
    assert set(calls) == {"db:5432", "cache:6379", "api.example.com", UNKNOWN_PEER}
    assert (calls["db:5432"].requests, calls["db:5432"].errors) == (2, 1)
    assert calls["db:5432"].median_ms == pytest.approx(3.0)


def test_a_client_span_wrapping_another_is_one_call() -> None:
    """requests over urllib3, both instrumented: the inner span carried the context."""
    spans = [
        span("web", "SERVER", "in"),
        span("web", "CLIENT", "requests", "in", ms=5),
        span("web", "CLIENT", "urllib3", "requests", ms=4),
        span("api", "SERVER", "srv", "urllib3"),
    ]
    service_map = build_service_map(spans)
    assert [(e.caller, e.callee, e.requests) for e in service_map.edges] == [("web", "api", 1)]
    assert service_map.external == ()


def test_a_server_span_with_a_lost_parent_is_no_edge() -> None:
    spans = [span("web", "CLIENT", "out", attributes={"http.url": "http://api:8000/"}),
             span("api", "SERVER", "srv", "missing-parent")]
    service_map = build_service_map(spans)
    assert service_map.edges == ()
    assert unjoined_calls(service_map, ["web", "api"])[0].peer == "api:8000"
    assert unjoined_calls(service_map, ["web"]) == []


def test_spans_without_a_service_name_still_make_a_node() -> None:
    service_map = build_service_map([span(None, "SERVER", "x")])
    assert [n.service for n in service_map.nodes] == ["(no service.name)"]


def test_depths_put_each_service_right_of_its_deepest_caller_and_stop_on_cycles() -> None:
    chain = [*call("a", "web", "api", ms=1), *call("b", "api", "db", ms=1),
             *call("c", "web", "db", ms=1), *call("d", "db", "web", ms=1)]
    depths = build_service_map(chain).depths()  # web → db → web: a cycle
    assert set(depths) == {"web", "api", "db"}
    assert all(0 <= depth < 3 for depth in depths.values()), depths
    acyclic = build_service_map(chain[:12]).depths()
    assert acyclic == {"web": 0, "api": 1, "db": 2}


def test_peer_of_prefers_the_stable_attribute_names() -> None:
    both = span("web", "CLIENT", "x", attributes={"server.address": "new", "net.peer.name": "old"})
    assert peer_of(both) == "new"
    bad_port = span("web", "CLIENT", "y", attributes={"url.full": "http://host:notaport/x"})
    assert peer_of(bad_port) == "host"


# ---- the checks of a run together -----------------------------------------------------------------

def responses(project: Project, *, status_of_fail: int | None = None) -> list[ServiceResponse]:
    out = []
    for spec in project.services():
        for smoke in spec.smoke:
            status = status_of_fail if status_of_fail and smoke.status >= 500 else smoke.status
            out.append(ServiceResponse(spec.name, SmokeResponse(smoke, status)))
    return out


def traced_routes(project: Project) -> list[ReceivedSpan]:
    return [span(spec.name, "SERVER", f"{spec.name}{index}", trace=f"{spec.name}{index}",
                 attributes={"http.route": smoke.route})
            for spec in project.services() for index, smoke in enumerate(spec.smoke) if smoke.route]


def failed(checks: list[Check]) -> list[str]:
    return [check.description for check in checks if not check.passed]


def test_services_that_answer_and_trace_every_route_and_join_their_calls_pass(project: Project) -> None:
    specs = project.services()
    caller, callee = specs[0].name, specs[1].name
    spans = [*traced_routes(project), *call("x", caller, callee, ms=2)]
    checks = check_together(specs, responses(project), spans, build_service_map(spans))
    assert failed(checks) == []
    assert len(checks) == 2 * len(specs) + 1


def test_a_wrong_answer_a_missing_route_and_an_unjoined_call_fail(project: Project) -> None:
    specs = project.services()
    caller, callee = "backend-flask", "backend-fastapi"  # the samples' one call between services
    spans = [s for s in traced_routes(project) if s.service_name != callee]
    spans += [span(caller, "CLIENT", "lost", attributes={"http.url": f"http://{callee}:8000/"})]
    checks = check_together(specs, responses(project, status_of_fail=200), spans,
                            build_service_map(spans))
    assert sorted(failed(checks)) == sorted([
        *(f"{spec.name}: every smoke request answers as specified" for spec in specs),
        f"{callee}: a server span for every smoke route",
        "calls between the services carry the trace context (each joins the callee's server span)",
    ])
    detail = next(c.detail for c in checks if c.description.startswith("calls between"))
    assert detail == f"{caller} → {callee}:8000: 1 call(s) no server span joined"
