"""The service map on real images: the two web samples run together on one network, the Flask
home route calls the FastAPI notifications route, and the spans that reach the receiver make the
map; alone, the same route still answers (the call fails soft, and says so)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.build.images import BuildResult
from builder.cli.main import main as cli_main
from builder.engine.client import Engine
from builder.engine.containers import PROCESS_RUN_ID
from builder.naming import RUN_LABEL
from builder.project import Project
from builder.report.service_map import EDGE_COLOUR, NODE_FILL
from builder.spec.service import VARIANTS
from builder.verify.service_map import build_service_map, peer_host
from builder.verify.spans import verify_image
from builder.verify.together import verify_together
from tests.support.browser import rendered_colours

pytestmark = pytest.mark.integration
CALLER, CALLEE = "backend-flask", "backend-fastapi"
CALLING_ROUTE = "/api/activities/home"


def rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_call_between_the_samples_is_one_edge_with_its_counts(
        variant: str, project: Project, built: dict[tuple[str, str], BuildResult],
        engine: Engine) -> None:
    specs = [project.service(CALLER), project.service(CALLEE)]
    images = {spec.name: built[(spec.name, variant)].tags[0] for spec in specs}
    report = verify_together(engine, specs, variant, images, rounds=3)
    assert report.ok, [c for c in report.checks if not c.passed]
    service_map = report.service_map
    assert [(e.caller, e.callee) for e in service_map.edges] == [(CALLER, CALLEE)]
    edge = service_map.edges[0]
    calling = sum(1 for smoke in specs[0].smoke if smoke.path == CALLING_ROUTE)
    assert (edge.requests, edge.errors) == (3 * calling, 0)
    assert 0 < edge.median_ms < 10_000
    assert service_map.external == (), "every call was answered by a traced service"
    nodes = {node.service: node for node in service_map.nodes}
    assert set(nodes) == {CALLER, CALLEE}
    # The callee answered its own smoke requests and the caller's calls.
    assert nodes[CALLEE].requests == 3 * len(specs[1].smoke) + edge.requests
    assert nodes[CALLEE].errors == 3 * sum(1 for s in specs[1].smoke if s.status >= 500)
    # One trace holds the request across both services: server → client → the callee's server.
    joined = {s.trace_id for s in report.spans if s.service_name == CALLEE
              and s.attributes.get("http.route") == "/api/notifications"
              and any(p.span_id == s.parent_span_id and p.kind == "CLIENT" for p in report.spans)}
    assert len(joined) == edge.requests
    mine = engine.sdk.api.networks(filters={"label": f"{RUN_LABEL}={PROCESS_RUN_ID}"})
    assert mine == [], "the private network is removed with its containers"


def test_alone_the_calling_route_still_answers_and_says_the_call_failed(
        project: Project, built: dict[tuple[str, str], BuildResult], engine: Engine) -> None:
    spec = project.service(CALLER)
    report = verify_image(engine, spec, "prod", built[(CALLER, "prod")].tags[0])
    assert report.ok, [c for c in report.checks if not c.passed]
    fetch = next(s for s in report.spans if s.name == "notifications.fetch")
    assert fetch.status_code == "ERROR" and "notifications unavailable" in fetch.status_message
    assert fetch.attributes["app.notifications.available"] is False
    service_map = build_service_map(report.spans)
    assert service_map.edges == ()
    assert [peer_host(c.peer) for c in service_map.external] == [CALLEE]


def test_verify_together_writes_the_map_and_chromium_draws_it(
        project: Project, built: dict[tuple[str, str], BuildResult], tmp_path: Path) -> None:
    code = cli_main(["-C", str(project.root), "verify", CALLER, CALLEE, "--variant", "dev",
                     "--together"])
    assert code == 0
    folder = project.reports_dir / "service-map"
    document = json.loads((folder / "dev.json").read_text())
    assert [(e["caller"], e["callee"], e["errors"]) for e in document["edges"]] == [(CALLER, CALLEE, 0)]
    assert document["edges"][0]["requests"] >= 1
    page = folder / "dev.html"
    html = page.read_text()
    assert "<script" not in html and " src=" not in html and "url(http" not in html
    pixels = rendered_colours(page, tmp_path, "1200,900")
    # Two service boxes of 210 x 64 px, filled; an arrow 3 px thick across the 190 px between them.
    assert pixels[rgb(NODE_FILL)] > 2 * 150 * 50, "the service boxes are missing"
    assert pixels[rgb(EDGE_COLOUR)] > 300, "the call's arrow is missing"
