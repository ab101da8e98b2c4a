"""`verify` against real images and the real receiver, including the ways telemetry silently breaks."""

from __future__ import annotations

import dataclasses

import docker
import pytest

from builder.build.images import BuildResult
from builder.engine.client import Engine
from builder.engine.filesystem import files_containing
from builder.project import Project
from builder.spec.service import VARIANTS, SmokeRequest
from builder.verify.run import promises_kept
from builder.verify.spans import TEST_API_KEY, verify_image
from tests.support.reports import failed
from tests.support.samples import SERVICES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_verify_passes(service: str, variant: str, project: Project,
                       built: dict[tuple[str, str], BuildResult],
                       engine: Engine) -> None:
    spec = project.service(service)
    report = verify_image(engine, spec, variant, built[(service, variant)].tags[0])
    assert report.ok, failed(report)
    assert {s.kind for s in report.spans} >= {"SERVER", "INTERNAL"}


def test_wrong_endpoint_fails_verify(project: Project, built: dict[tuple[str, str], BuildResult],
                                     engine: Engine) -> None:
    spec = project.service("backend-flask")
    report = verify_image(engine, spec, "prod", built[("backend-flask", "prod")].tags[0],
                          endpoint="http://host.docker.internal:9", span_timeout=4)
    assert not report.ok
    assert "GET /api/activities/home: server span with http.route=/api/activities/home" in failed(report)
    assert "GET /api/activities/home answers 200" not in failed(report), "the app itself still works"


def test_the_distros_grpc_default_is_caught(project: Project,
                                            built: dict[tuple[str, str], BuildResult],
                                            engine: Engine) -> None:
    """With only the HTTP exporter installed, protocol=grpc exports nothing and says nothing."""
    spec = project.service("backend-flask")
    report = verify_image(engine, spec, "prod", built[("backend-flask", "prod")].tags[0],
                          extra_env={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, span_timeout=4)
    assert not report.ok
    assert report.spans == ()
    assert "GET /api/activities/home answers 200" not in failed(report)


def test_missing_route_span_fails_verify(project: Project,
                                         built: dict[tuple[str, str], BuildResult],
                                         engine: Engine) -> None:
    spec = project.service("backend-fastapi")
    missing = SmokeRequest("/api/nope", "GET", 404, "/api/nope", ())
    spec = dataclasses.replace(spec, smoke=(*spec.smoke, missing))
    report = verify_image(engine, spec, "dev", built[("backend-fastapi", "dev")].tags[0],
                          span_timeout=4)
    # Each pillar misses that request, and only that one.
    assert failed(report) == [
        "GET /api/nope: server span with http.route=/api/nope",
        "GET /api/nope: metric http.server.request.duration (s) with http.route=/api/nope, status 404",
        "GET /api/nope: log record with the request's trace and span ids"]


def test_api_key_reaches_the_receiver_and_is_not_in_the_image(
        project: Project, built: dict[tuple[str, str], BuildResult],
        docker_client: docker.DockerClient, engine: Engine) -> None:
    image = built[("backend-flask", "prod")].tags[0]
    report = verify_image(engine, project.service("backend-flask"), "prod", image)
    assert ("x-honeycomb-team", TEST_API_KEY) in report.export_headers
    history = " ".join(layer["CreatedBy"] for layer in docker_client.api.history(image))
    config = docker_client.api.inspect_image(image)["Config"]
    assert TEST_API_KEY not in history
    assert not [e for e in config["Env"] if e.startswith(("HONEYCOMB_API_KEY", "OTEL_EXPORTER_OTLP_HEADERS"))]
    assert files_containing(engine, image, [TEST_API_KEY.encode()]) == []


def test_sdk_disabled_turns_it_all_off(project: Project, built: dict[tuple[str, str], BuildResult],
                                       engine: Engine) -> None:
    spec = project.service("backend-fastapi")
    report = verify_image(engine, spec, "prod", built[("backend-fastapi", "prod")].tags[0],
                          extra_env={"OTEL_SDK_DISABLED": "true"}, span_timeout=3)
    assert report.spans == ()
    assert [c for c in report.checks if "answers" in c.description and not c.passed] == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_verify_checks_the_catalog_promises(variant: str, project: Project,
                                            built: dict[tuple[str, str], BuildResult],
                                            engine: Engine) -> None:
    """verify measures the image against its target's promises, with the same ids as the gate."""
    service = project.service(SERVICES[0])
    result = built[(service.name, variant)]
    kept = promises_kept(engine, project, service, variant, result.tags[0])
    declared = {name for name, value in dataclasses.asdict(result.target.promises).items()
                if value is not None}
    assert {check.promise for check in kept} == declared
    assert all(check.passed for check in kept), [c.detail for c in kept if not c.passed]
    if variant == "prod" and result.target.promises.shell is False:
        assert "IW-SHELL-001" in {check.id for check in kept}
