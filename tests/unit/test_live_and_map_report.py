"""The dev loop's live trace assembly and the service map's report files: no engine needed."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from builder.report.service_map import (
    EDGE_COLOUR,
    ERROR_EDGE_COLOUR,
    EXTERNAL_FILL,
    NODE_FILL,
    SCHEMA,
    MapContext,
    map_svg,
    write_service_map,
)
from builder.verify.live import LiveTraces
from builder.verify.service_map import build_service_map
from tests.unit.test_service_map import call, span


def test_a_trace_is_ready_once_its_root_came_and_nothing_new_for_a_while() -> None:
    live = LiveTraces(quiet_s=1.0, give_up_s=5.0)
    first, second = call("a", "web", "api", ms=2)[:2], call("a", "web", "api", ms=2)[2:]
    live.add(second, now=10.0)  # the callee's batch comes first: no root yet
    assert live.ready(now=12.0) == []
    live.add(first, now=12.5)
    assert live.ready(now=13.0) == []
    [trace] = live.ready(now=13.5)
    assert {s.span_id for s in trace} == {"a-in", "a-out", "a-srv", "a-work"}
    assert live.ready(now=20.0) == [], "handed out once"


def test_a_rootless_trace_is_handed_out_after_the_give_up_time_and_late_spans_again() -> None:
    live = LiveTraces(quiet_s=1.0, give_up_s=5.0)
    live.add([span("api", "SERVER", "s", "remote-parent", trace="r")], now=0.0)
    assert live.ready(now=4.9) == []
    assert [s.span_id for s in live.ready(now=5.0)[0]] == ["s"]
    live.add([span("api", "INTERNAL", "late", "s", trace="r")], now=6.0)
    assert [s.span_id for s in live.ready(now=11.0)[0]] == ["late"]


def test_flush_hands_out_everything_pending_oldest_first() -> None:
    live = LiveTraces()
    early = span("web", "SERVER", "a", trace="earlier")
    late = dataclasses.replace(span("web", "SERVER", "b", trace="later"),
                               start_ns=early.start_ns + 1)
    live.add([late, early], now=0.0)
    assert [trace[0].trace_id for trace in live.flush()] == ["earlier", "later"]
    assert live.flush() == []


def test_the_report_is_a_self_contained_page_and_a_json_document(tmp_path: Path) -> None:
    spans = [*call("a", "web", "api", ms=4), *call("b", "web", "api", ms=8, server_status="ERROR"),
             span("api", "CLIENT", "db", "a-srv", trace="a", attributes={"server.address": "db<1>"})]
    service_map = build_service_map(spans)
    context = MapContext("dev", "2026-01-01T00:00:00Z", (("web", "web:dev"), ("api", "api:dev")),
                         len(spans))
    page, document = write_service_map(tmp_path, service_map, context)
    assert page == tmp_path / "service-map" / "dev.html"
    text = page.read_text()
    assert "<script" not in text and " src=" not in text and "url(http" not in text
    assert "db&lt;1&gt;" in text and "db<1>" not in text, "peer names are escaped"
    for colour in (NODE_FILL, ERROR_EDGE_COLOUR, EXTERNAL_FILL):
        assert colour in text
    data = json.loads(document.read_text())
    assert data["schema"] == SCHEMA and data["spans"] == len(spans)
    assert data["edges"] == [{"caller": "web", "callee": "api", "requests": 2, "errors": 1,
                              "median_ms": 6.0, "latencies_ms": [4.0, 8.0]}]
    assert [(c["caller"], c["peer"]) for c in data["external_calls"]] == [("api", "db<1>")]
    assert {n["service"] for n in data["nodes"]} == {"web", "api"}


def test_callers_are_drawn_left_of_what_they_call() -> None:
    svg = map_svg(build_service_map([*call("a", "web", "api", ms=1), *call("b", "api", "db", ms=1)]))
    x_of = {name: float(x) for x, name in re.findall(
        r'<rect x="([\d.]+)"[^>]*/><text[^>]*class="name">([^<]+)</text>', svg)}
    assert x_of["web"] < x_of["api"] < x_of["db"]
    assert svg.count(f'stroke="{EDGE_COLOUR}"') == 2


def test_a_call_back_up_the_chain_bends_under_the_boxes() -> None:
    straight = map_svg(build_service_map(call("a", "web", "api", ms=1)))
    cycle = map_svg(build_service_map([*call("a", "web", "api", ms=1), *call("b", "api", "web", ms=1)]))
    assert " C" not in straight and re.search(r'<path d="M[\d.,]+ C', cycle)
    height = re.compile(r'<svg[^>]*height="(\d+)"')
    assert int(height.search(cycle)[1]) > int(height.search(straight)[1])  # type: ignore[index]
