"""Faults: each gives a clear message, a non-zero exit, no dangling tags, no containers left."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest
from docker.models.containers import ContainerCollection

from builder.build.images import BuildResult
from builder.cli.main import main
from builder.engine.client import Engine
from builder.engine.containers import labels, managed_containers, remove_leftovers
from builder.inspect.config import config_findings
from builder.project import Project
from builder.verify.spans import verify_image

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, root: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder", "-C", str(root), *args], capture_output=True,
                          text=True, check=False, env={**os.environ, "COLUMNS": "300", **(env or {})})


def managed(engine: Engine) -> list[str]:
    return managed_containers(engine)


def test_failing_build_step_shows_step_and_log_tail_and_tags_nothing(
        tmp_path: Path, docker_client: docker.DockerClient, engine: Engine, built: dict) -> None:
    for folder in ("images", "templates", "build"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    broken = tmp_path / "images" / "broken-svc"
    shutil.copytree(ROOT / "images" / "backend-flask", broken)
    spec = broken / "image.yaml"
    spec.write_text(spec.read_text().replace("name: backend-flask", "name: broken-svc"))
    (broken / "requirements.txt").write_text("imagewright-no-such-package==1.0\n")
    result = cli("build", "broken-svc", "--variant", "dev", root=tmp_path)
    assert result.returncode == 1
    # The step as the builder names it: `Step 8/30 : RUN …` (legacy) or `venv: RUN …` (BuildKit).
    assert re.search(r"error: build of broken-svc dev failed at (Step \d+/\d+ : |venv: )RUN "
                     r"(--mount=\S+ )*pip --python /opt/venv/bin/python install", result.stderr)
    assert "log tail:" in result.stderr and "imagewright-no-such-package" in result.stderr
    assert "Traceback" not in result.stderr
    assert docker_client.images.list(name="broken-svc") == []
    assert managed(engine) == []


def test_unhealthy_container_fails_clearly_and_is_removed(
        project: Project, built: dict[tuple[str, str], BuildResult],
        engine: Engine) -> None:
    spec = dataclasses.replace(project.service("backend-flask"), health_path="/api/nope")
    report = verify_image(engine, spec, "prod", built[("backend-flask", "prod")].tags[0],
                          health_timeout=5)
    assert not report.ready and not report.ok
    assert report.checks[0].description == "/api/nope answers 2xx within 5s"
    assert report.checks[0].detail.startswith("not ready in time (HTTP 404); the container's log")
    assert managed(engine) == []


@pytest.mark.parametrize(("stop", "command"), [
    (signal.SIGINT, ["verify", "backend-flask", "--variant", "prod", "--runs", "5"]),   # Ctrl-C
    (signal.SIGTERM, ["verify", "backend-fastapi", "--variant", "dev", "--runs", "5"]),  # CI cancel
    (signal.SIGINT, ["demo"]),  # a pipeline of commands: no later step may start
], ids=["verify-SIGINT", "verify-SIGTERM", "demo-SIGINT"])
def test_interrupted_run_exits_130_and_leaves_nothing(
        stop: signal.Signals, command: list[str], built: dict[tuple[str, str], BuildResult],
        engine: Engine, tmp_path: Path) -> None:
    # A file, not a pipe: a pipe nobody reads while we wait would stall the build log.
    with (tmp_path / "stdout").open("w+") as stdout:
        process = subprocess.Popen([sys.executable, "-m", "builder", *command], cwd=ROOT,
                                   stdout=stdout, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "COLUMNS": "200"})
        try:
            deadline = time.monotonic() + 120
            # Signal as soon as the engine lists the container: often before `create` has
            # returned to the CLI, the window in which only a sweep by run label can find it.
            while not managed(engine) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert managed(engine), f"{command[0]} never started a container"
            process.send_signal(stop)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:  # the test failed: don't let the run outlive it
                process.kill()
                process.wait()
                remove_leftovers(engine)
        stdout.seek(0)
        output = stdout.read()
    assert process.returncode == 130, stderr
    assert stderr.count("interrupted") == 1 and "Traceback" not in stderr, stderr
    assert "demo: scan" not in output
    assert managed(engine) == []


def test_interrupt_while_the_engine_creates_a_container_leaves_nothing(
        built: dict[tuple[str, str], BuildResult], engine: Engine,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The engine makes the container, the interrupt lands before its id reaches the caller: no
    `finally` knows the container, so only the sweep by this process's run label can remove it."""
    real_create = ContainerCollection.create
    made: list[str] = []

    def create_then_interrupted(self: ContainerCollection, *args: object, **kwargs: object) -> None:
        made.append(real_create(self, *args, **kwargs).name)
        raise KeyboardInterrupt

    monkeypatch.setattr(ContainerCollection, "create", create_then_interrupted)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(["-C", str(ROOT), "verify", "backend-flask", "--variant", "prod", "--runs", "1"])
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert made, "verify never created a container"
    assert managed(engine) == []


def test_two_verify_runs_at_once_do_not_collide(project: Project,
                                                built: dict[tuple[str, str], BuildResult],
                                                engine: Engine) -> None:
    spec = project.service("backend-fastapi")
    image = built[("backend-fastapi", "prod")].tags[0]
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: verify_image(engine, spec, "prod", image), range(2)))
    assert all(report.ok for report in reports)
    trace_ids = [{s.trace_id for s in report.spans} for report in reports]
    assert not trace_ids[0] & trace_ids[1], "each run sees only its own container's spans"


def test_clean_removes_leftovers_by_label(docker_client: docker.DockerClient, engine: Engine) -> None:
    container = docker_client.containers.create("ubuntu:24.04", ["true"], labels=labels("test-leftover"))
    result = cli("clean")
    assert result.returncode == 0 and container.name in result.stdout
    assert managed(engine) == []


def test_secrets_in_an_image_config_are_found(docker_client: docker.DockerClient, engine: Engine,
                                              tmp_path: Path,
                                              built: dict[tuple[str, str], BuildResult]) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM ubuntu:24.04\n"
        "ENV AWS_SECRET_ACCESS_KEY=abcdEFGHijklMNOPqrstUVWXyz0123456789abcd\n"
        "LABEL deploy.token=t0k3n-value\n"
        "ARG DB_PASSWORD=hunter2\n"
        "RUN echo building\n"
        "USER 65532\n")
    image, _ = docker_client.images.build(path=str(tmp_path), tag="imagewright-test/config-secrets:1",
                                          labels={"io.imagewright.test": "1"}, rm=True)
    try:
        ids = {finding.id for finding in config_findings(engine, image.id)}
        assert ids == {"IW-CFG-001", "IW-CFG-002", "IW-CFG-003"}
    finally:
        docker_client.images.remove(image.id, force=True)
    for result in built.values():  # and none in the images the toolkit builds
        assert config_findings(engine, result.tags[0]) == [], result.tags[0]


def test_render_pin_pins_local_bases(tmp_path: Path, built: dict[tuple[str, str], BuildResult]) -> None:
    for folder in ("images", "templates", "build"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    result = cli("render", "--pin", root=tmp_path)
    assert result.returncode == 0, result.stderr
    lock = (tmp_path / "build" / "bases.lock.yaml").read_text()
    assert '"ubuntu:24.04": "sha256:' in lock
    dockerfile = (tmp_path / "build" / "backend-flask" / "Dockerfile.prod-distroless").read_text()
    assert "FROM sha256:" in dockerfile and "FROM ubuntu:24.04" not in dockerfile
    assert cli("render", "--check", root=tmp_path).returncode == 0
