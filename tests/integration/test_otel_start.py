"""OpenTelemetry's in-process start on real images: the build-time plan, the wrapper still reachable
for comparison, and users' OTEL_* variables keeping their documented meaning."""

from __future__ import annotations

import json

import pytest

from builder.build.images import BuildResult
from builder.engine.client import Engine
from builder.engine.filesystem import read_file
from builder.project import Project
from builder.spec.service import VARIANTS
from builder.verify.spans import verify_image
from tests.support.reports import failed
from tests.support.samples import SERVICES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_the_plan_holds_the_venvs_entry_points(service: str, variant: str, project: Project,
                                              built: dict[tuple[str, str], BuildResult],
                                              engine: Engine) -> None:
    data = read_file(engine, built[(service, variant)].tags[0], project.layout.image.otel_plan)
    assert data is not None, f"{project.layout.image.otel_plan} missing"
    plan = json.loads(data)
    groups = plan["entry_points"]
    instrumentors = dict(groups["opentelemetry_instrumentor"])
    # What the wrapper would skip at every start (e.g. an instrumentation bootstrap picks whose
    # library is absent) is left out once, with the reason.
    assert not set(plan["conflicts"]) & set(instrumentors)
    assert all("instrument" in reason for reason in plan["conflicts"].values())
    assert instrumentors and all(value.startswith("opentelemetry.instrumentation.")
                                 for value in instrumentors.values())
    assert "otlp_proto_http" in dict(groups["opentelemetry_traces_exporter"])
    assert [name for name, _ in groups["opentelemetry_distro"]] == ["distro"]
    assert {"tracecontext", "baggage"} <= {name for name, _ in groups["opentelemetry_propagator"]}


@pytest.mark.parametrize("service", SERVICES)
def test_the_wrapper_is_still_reachable(service: str, project: Project,
                                        built: dict[tuple[str, str], BuildResult],
                                        engine: Engine) -> None:
    report = verify_image(engine, project.service(service), "prod",
                          built[(service, "prod")].tags[0],
                          extra_env={"IMAGEWRIGHT_OTEL_START": "wrapper"})
    assert report.ok, failed(report)


def test_an_unreadable_plan_falls_back_to_discovery(project: Project,
                                                    built: dict[tuple[str, str], BuildResult],
                                                    engine: Engine) -> None:
    service = SERVICES[0]
    report = verify_image(engine, project.service(service), "prod", built[(service, "prod")].tags[0],
                          extra_env={"IMAGEWRIGHT_OTEL_PLAN": "/nonexistent/plan.json"})
    assert report.ok, failed(report)


def test_disabled_instrumentations_keep_their_meaning(project: Project,
                                                      built: dict[tuple[str, str], BuildResult],
                                                      engine: Engine) -> None:
    """`*` disables every instrumentation: no server span, while the app's own spans still leave
    through the SDK the start set up."""
    service = SERVICES[0]
    report = verify_image(engine, project.service(service), "prod", built[(service, "prod")].tags[0],
                          extra_env={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*"}, span_timeout=6)
    kinds = {span.kind for span in report.spans}
    assert "SERVER" not in kinds
    assert "INTERNAL" in kinds


def test_the_sampler_keeps_its_meaning(project: Project, built: dict[tuple[str, str], BuildResult],
                                       engine: Engine) -> None:
    service = SERVICES[0]
    report = verify_image(engine, project.service(service), "prod", built[(service, "prod")].tags[0],
                          extra_env={"OTEL_TRACES_SAMPLER": "always_off"}, span_timeout=4)
    assert report.spans == ()
    assert not any(description.endswith(("answers 200", "answers 500"))
                   for description in failed(report)), "the app itself still answers"
