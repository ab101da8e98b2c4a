"""The shapes real services have at run time, on the real engine.

The app (tests/support/apps/ownotel) is written the way many public Flask services are: it builds
its own TracerProvider, OTLP exporter and Flask instrumentation, has no health route, and its
requirements name no production server. It is built here as several services of a temporary
project, each a different spec around the same source; every tag is unique to this run and every
image is removed afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from builder.build.images import ImageBuilder
from builder.compare.measure import compare_service
from builder.engine.client import Engine
from builder.engine.containers import running_service, wait_until_ready
from builder.engine.filesystem import read_file
from builder.project import Project
from builder.spec.service import ServiceSpec
from builder.verify.spans import verify_image
from tests.support.reports import failed
from tests.support.throwaway import project_root, remove_images

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "support" / "apps" / "ownotel"
SAMPLE = ROOT / "images" / "backend-flask"  # an app that only calls OpenTelemetry's API
# gunicorn 25.1+ opens a control socket; 27.0.1 is what an unpinned `gunicorn` gets today.
GUNICORN = "gunicorn==27.0.1"

SPEC = """\
name: {name}
port: 8080
requirements: requirements.txt
sources: {sources}
dev:
  command: [flask, --app, app, run, --host=0.0.0.0, --port=8080]
prod:
  command: [gunicorn, --bind=0.0.0.0:8080, --workers={workers}, {preload}--worker-tmp-dir=/dev/shm,
            "{target}"]
  flavors: [distroless]
{pip}smoke:
  - {{path: {path}, route: {path}, spans: [{span}]}}
otel: {{mode: {mode}}}
"""


@dataclass(frozen=True)
class Shape:
    """One service of the temporary project: the app's source under one spec."""

    suffix: str
    mode: str = "auto"
    workers: int = 2
    preload: bool = False
    server: bool = True  # gunicorn in prod.pip_packages
    target: str = "app:app"
    source: Path = APP

    def spec_text(self, name: str) -> str:
        sample = self.source == SAMPLE
        return SPEC.format(
            name=name, workers=self.workers, preload="--preload, " if self.preload else "",
            target=self.target, mode=self.mode,
            sources="[app.py, services]" if sample else "[app.py]",
            pip=f"  pip_packages: [{GUNICORN}]\n" if self.server and not sample else "",
            path="/api/activities/home" if sample else "/api/items",
            span="home-activities.mock-data" if sample else "items.load")


SHAPES = {
    "auto": Shape("auto"),  # the wrapper owns OpenTelemetry; 2 workers, app loaded in each
    "app": Shape("app", mode="app", workers=3, preload=True),  # the app owns it; loaded pre-fork
    "noserver": Shape("noserver", server=False),  # gunicorn nowhere: the build must refuse
    "crash": Shape("crash", target="app:nope"),  # the server exits: its app object isn't there
    "silent": Shape("silent", mode="app", source=SAMPLE),  # otel.mode app, but no set-up at all
}


class Quiet:
    def start(self, title: str) -> None: ...
    def step(self, number: int, total: int, instruction: str) -> None: ...
    def line(self, text: str) -> None: ...
    def done(self, title: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class Shapes:
    root: Path
    project: Project
    names: dict[str, str]  # shape → service name
    images: dict[str, str]  # shape → built prod image

    def spec(self, shape: str) -> ServiceSpec:
        return self.project.service(self.names[shape])


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder", "-C", str(root), *args],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "COLUMNS": "300"})


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory, engine: Engine,
           docker_client: docker.DockerClient) -> Iterator[Shapes]:
    root = tmp_path_factory.mktemp("shapes")
    names = project_root(root, "rt", SHAPES)
    for shape, spec in SHAPES.items():
        folder = root / "images" / names[shape]
        shutil.copytree(spec.source, folder)
        (folder / "image.yaml").write_text(spec.spec_text(names[shape]))
    project = Project(root)
    builder = ImageBuilder(engine, project, Quiet(), lambda text: None)
    try:
        images = {}
        for shape in ("auto", "app", "crash", "silent"):
            target = builder.choose_flavors(project.service(names[shape]), None).build[0]
            images[shape] = builder.build_target(project.service(names[shape]), target,
                                                 primary=True).tags[0]
        yield Shapes(root, project, names, images)
    finally:
        remove_images(docker_client, names.values())


# ---- 4. the build proves the image can start ----------------------------------------------------

def test_an_image_without_its_server_is_refused_before_it_is_tagged(
        shapes: Shapes, docker_client: docker.DockerClient, engine: Engine) -> None:
    name = shapes.names["noserver"]
    result = cli(shapes.root, "build", name, "--variant", "prod")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: build of {name} prod-distroless refused: its command 'gunicorn' (prod.command) is "
        "not in the image (looked in /opt/venv/bin, /usr/local/bin, /usr/bin): add the package "
        f"that provides it to requirements.txt or to prod.pip_packages in images/{name}/image.yaml"]
    assert docker_client.images.list(name=name) == []
    # With the server in prod.pip_packages (the "auto" service) prod builds, and dev, which gets
    # it too, keeps every package prod has.
    spec = shapes.spec("auto")
    builder = ImageBuilder(engine, shapes.project, Quiet(), lambda text: None)
    dev = builder.build_target(spec, shapes.project.catalog.targets(spec)[0], primary=True)
    lock = shapes.project.layout.image.lock_file
    for image in (dev.tags[0], shapes.images["auto"]):
        assert GUNICORN in (read_file(engine, image, lock) or b"").decode().splitlines(), image


# ---- 6. who sets up OpenTelemetry ---------------------------------------------------------------

def test_under_the_wrapper_the_apps_own_setup_is_reported_as_dead_code(
        shapes: Shapes, engine: Engine) -> None:
    report = verify_image(engine, shapes.spec("auto"), "prod", shapes.images["auto"])
    assert report.ok, failed(report)
    setup = report.otel_setup
    assert setup is not None and setup.mode == "auto" and setup.dead_code
    assert any("Overriding of current TracerProvider is not allowed" in e for e in setup.evidence)
    assert any("Attempting to instrument Flask app while already instrumented" in e
               for e in setup.evidence)
    # The spans are the wrapper's: its provider's resource says it set them up.
    assert all("telemetry.auto.version" in span.resource for span in report.spans)


def test_with_otel_mode_app_the_app_owns_it_and_no_wrapper_runs(shapes: Shapes,
                                                                engine: Engine) -> None:
    report = verify_image(engine, shapes.spec("app"), "prod", shapes.images["app"])
    assert report.ok, failed(report)
    setup = report.otel_setup
    assert setup is not None and setup.mode == "app" and setup.evidence == ()
    assert setup.app_sets_up_otel and not setup.dead_code
    assert report.spans and not [s for s in report.spans if "telemetry.auto.version" in s.resource]
    # The image's environment still reached the app's own SDK: endpoint, headers, resource.
    assert {s.resource.get("io.imagewright.variant") for s in report.spans} == {"prod"}
    assert ("x-honeycomb-team", "imagewright-verify-key") in report.export_headers


# ---- 7. pre-fork servers ------------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "workers"), [("auto", 2), ("app", 3)],
                         ids=["gunicorn-2-workers", "gunicorn-3-workers-preload"])
def test_spans_arrive_from_every_worker(shapes: Shapes, engine: Engine, shape: str,
                                        workers: int) -> None:
    report = verify_image(engine, shapes.spec(shape), "prod", shapes.images[shape])
    coverage = report.workers
    assert coverage is not None and coverage.workers == workers
    assert coverage.ok and len(coverage.processes) == workers, coverage
    assert all(p.startswith("process.pid=") for p in coverage.processes)
    assert "spans from every worker of the pre-fork server" in " ".join(
        check.description for check in report.checks if check.passed)


def test_gunicorn_runs_clean_read_only_and_the_healthcheck_asks_the_port(
        shapes: Shapes, engine: Engine) -> None:
    spec, image = shapes.spec("auto"), shapes.images["auto"]
    assert spec.health_path is None
    with running_service(engine, image, spec.port, env={"OTEL_SDK_DISABLED": "true"}) as running:
        wait_until_ready(running, None, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # HEALTHCHECK --interval=10s: the first probe at 10 s
            running.container.reload()
            health = running.container.attrs["State"]["Health"]
            if health["Status"] != "starting":
                break
            time.sleep(1)
        assert health["Status"] == "healthy", health["Log"][-1:]
        log = running.logs(tail=100)
    assert "Control socket listening at /dev/shm/gunicorn.ctl" in log, log
    assert "Read-only file system" not in log and "Control server error" not in log, log
    # What the image's XDG_RUNTIME_DIR prevents: gunicorn's default under $HOME, read-only here.
    with running_service(engine, image, spec.port, env={"OTEL_SDK_DISABLED": "true",
                                                        "XDG_RUNTIME_DIR": ""}) as running:
        wait_until_ready(running, None, timeout=60)
        time.sleep(1)
        assert "Control server error: [Errno 30] Read-only file system" in running.logs(tail=100)


# ---- 8. verify never ends in a traceback --------------------------------------------------------

def test_a_command_missing_at_run_time_is_a_failed_check(shapes: Shapes, engine: Engine) -> None:
    # An image built before the build's check, or run with another PATH: entry.py says so.
    report = verify_image(engine, shapes.spec("auto"), "prod", shapes.images["auto"],
                          extra_env={"PATH": "/usr/bin"})
    assert not report.ready and not report.ok
    first = report.checks[0]
    assert first.description == "port 8080 accepts connections within 60s" and not first.passed
    assert "the container exited with code 127" in first.detail
    assert "imagewright entrypoint: 'gunicorn' is not in the image" in first.detail
    assert "GET /api/items: server span with http.route=/api/items" in failed(report)


def test_a_container_that_exits_is_a_failed_check(shapes: Shapes, engine: Engine) -> None:
    """gunicorn's master listens before its workers load the app: ready, then gone."""
    report = verify_image(engine, shapes.spec("crash"), "prod", shapes.images["crash"],
                          span_timeout=5)
    assert not report.ready and not report.ok
    [exited] = [check for check in report.checks
                if check.description == "the container keeps running through the smoke requests"]
    assert not exited.passed and exited.detail.startswith("it exited with code ")
    assert "App failed to load" in exited.detail


def test_a_health_path_that_never_answers_is_a_failed_check(shapes: Shapes,
                                                            engine: Engine) -> None:
    spec = dataclasses.replace(shapes.spec("auto"), health_path="/api/nope")
    report = verify_image(engine, spec, "prod", shapes.images["auto"], health_timeout=5)
    assert not report.ready
    assert report.checks[0].description == "/api/nope answers 2xx within 5s"
    assert "not ready in time (HTTP 404)" in report.checks[0].detail


def test_spans_that_never_arrive_are_failed_checks(shapes: Shapes, engine: Engine) -> None:
    report = verify_image(engine, shapes.spec("auto"), "prod", shapes.images["auto"],
                          endpoint="http://host.docker.internal:9", span_timeout=3)
    assert report.ready and report.spans == ()
    assert "traces reach the receiver" in failed(report)
    assert "GET /api/items answers 200" not in failed(report)


@pytest.mark.parametrize(("shape", "expected"), [
    ("silent", ["✘ GET /api/activities/home: server span with http.route=/api/activities/home",
                "✘ traces reach the receiver",
                "with otel.mode: app the app must set up OpenTelemetry itself"]),
    ("crash", ["✘ the container keeps running through the smoke requests",
               "startup not measured: the service never became ready, or did not stay up"]),
], ids=["no-spans", "exits"])
def test_the_verify_command_reports_lines_and_exits_1(shapes: Shapes, shape: str,
                                                      expected: list[str], engine: Engine) -> None:
    name = shapes.names[shape]
    result = cli(shapes.root, "verify", name, "--variant", "prod", "--runs", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip() == "verify failed for 1 image(s) or run(s) together"
    for line in expected:
        assert line in result.stdout, result.stdout
    document = json.loads((shapes.root / "reports" / name / "prod" / "otel.json").read_text())
    assert document["verified"] is False
    if shape == "silent":
        assert document["ready"] and "first_span" not in document["startup"]["with_opentelemetry"]
    else:
        assert document["ready"] is False and document["startup"] is None


# ---- 6 and 9 in compare -------------------------------------------------------------------------

class Progress:
    def begin(self, title: str, total: int) -> None: ...
    def doing(self, description: str) -> None: ...
    def advance(self) -> None: ...


def test_compare_says_why_yours_is_not_run_and_that_otel_off_is_off(shapes: Shapes,
                                                                    engine: Engine) -> None:
    spec = shapes.spec("auto")
    builder = ImageBuilder(engine, shapes.project, Quiet(), lambda text: None)
    builder.build_target(spec, shapes.project.catalog.targets(spec)[0], primary=True)
    comparison = compare_service(engine, shapes.project, builder, spec, 1, Progress())
    [yours] = comparison.unmeasured
    assert yours.name == "yours" and yours.image == f"{spec.name}:yours"
    assert yours.reason.startswith("its FROM python:3.12-slim is not available on this machine")
    assert engine.image(yours.image) is None
    assert [m.column.name for m in comparison.columns] == ["dev", "prod-distroless", "naive"]
    for measured in comparison.columns:
        assert measured.startup_plain.really_off, measured.column.name
        assert measured.startup_otel.timing("first_span_ms") is not None, measured.column.name
    prod = comparison.column("prod-distroless")
    assert prod.otel_setup is not None and prod.otel_setup.dead_code
