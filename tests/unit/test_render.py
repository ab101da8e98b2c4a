"""Rendering: assert on the Dockerfile's instructions, stage by stage, not only that files exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from builder.project import Project
from builder.render.dockerfiles import rendered_files
from builder.spec.service import OtelOptions
from tests.support.samples import DEBUG_TWINS, PROD_TARGETS, SERVICES


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_stages(text: str) -> list[list[Instruction]]:
    """Dockerfile → stages of instructions (continuations joined, comments dropped)."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(current)
            current = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM" or not stages:  # ARGs before the first FROM: a preamble
            stages.append([])
        stages[-1].append(Instruction(keyword.upper(), re.sub(r"\s+", " ", args.strip())))
    return stages


def dockerfile(project: Project, service: str, label: str) -> list[list[Instruction]]:
    spec = project.service(service)
    files = {f.path.name: f.text for f in rendered_files(project.renderer, spec, project.build_dir)}
    return parse_stages(files[f"Dockerfile.{label}"])


def only(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.args for i in stage if i.keyword == keyword]


@pytest.mark.parametrize("service", SERVICES)
def test_dev_is_ubuntu_with_debug_tools_and_reload(project: Project, service: str) -> None:
    stages = dockerfile(project, service, "dev")
    final = stages[-1]
    assert only(final, "FROM") == ["ubuntu:24.04"]
    installs = " ".join(only(final, "RUN"))
    for tool in ("bash", "curl", "jq", "less", "vim-tiny", "procps", "htop", "strace", "lsof",
                 "iproute2", "iputils-ping", "dnsutils", "netcat-openbsd", "tcpdump"):
        assert f" {tool} " in installs, tool
    venv_runs = " ".join(only(stages[0], "RUN"))
    for tool in ("debugpy", "ipython", "pytest"):
        assert tool in venv_runs
    command = json.loads(only(final, "CMD")[0])
    # uvicorn --reload, flask --debug, Django's runserver (it reloads unless told --noreload).
    assert "--reload" in command or "--debug" in command or (
        "runserver" in command and "--noreload" not in command)
    assert only(final, "USER") == ["10001:10001"]


@pytest.mark.parametrize(("service", "flavor"), PROD_TARGETS)
def test_prod_is_multi_stage_hardened_and_labelled(project: Project, service: str, flavor: str
                                                  ) -> None:
    stages = dockerfile(project, service, f"prod-{flavor}")
    assert len(stages) == 3, "venv, app and final stages"
    final = stages[-1]
    assert only(final, "FROM") == [project.catalog.flavors[flavor].base]
    assert only(final, "USER") == ["65532:65532"]
    entrypoint = json.loads(only(final, "ENTRYPOINT")[0])  # exec form, or this fails to parse
    assert entrypoint[-1] == "/opt/imagewright/entry.py"
    assert json.loads(only(final, "CMD")[0])[0] in ("gunicorn", "uvicorn")
    (healthcheck,) = only(final, "HEALTHCHECK")
    assert '"/opt/venv/bin/python"' in healthcheck and "curl" not in healthcheck
    copies = only(final, "COPY")
    assert "--from=venv /opt/venv /opt/venv" in copies
    assert all("ca-bundle" not in copy for copy in copies), "build trust stays in the venv stage"
    runs = " ".join(only(final, "RUN"))
    if flavor == "distroless":
        assert runs == "", "a distroless final stage has no shell to RUN with"
    else:
        assert "apk add --no-cache" in runs and "py3-pip" not in runs
    assert "gcc" not in runs and "build-base" not in runs
    venv_stage = " ".join(i.args for i in stages[0])
    assert "--without-pip" in venv_stage and "compileall" in venv_stage
    labels = " ".join(only(final, "LABEL"))
    for key in ("org.opencontainers.image.source", "org.opencontainers.image.revision",
                "org.opencontainers.image.created", "org.opencontainers.image.base.name",
                "org.opencontainers.image.base.digest", "org.opencontainers.image.version",
                "io.imagewright.variant=\"prod\"", f"io.imagewright.flavor=\"{flavor}\""):
        assert key in labels, key
    env = " ".join(only(final, "ENV"))
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in env
    assert "PIP_" not in env


def test_requirements_are_copied_before_the_source(project: Project) -> None:
    """Editing the app must not invalidate the dependency layers."""
    venv, app, _ = dockerfile(project, "backend-flask", "prod-distroless")
    assert any("requirements.txt" in args for args in only(venv, "COPY"))
    assert not any("app.py" in args for args in only(venv, "COPY"))
    # Copied from the service's folder as the project holds it: bake builds from the checkout.
    assert f"{project.layout.context.service_dir('backend-flask')}/app.py /app/app.py" in only(app, "COPY")


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # This checkout's builder, not an installed copy: a copied project tree has no builder/.
    checkout = str(Path(__file__).resolve().parents[2])
    return subprocess.run([sys.executable, "-m", "builder", "-C", str(root), *args],
                          capture_output=True, text=True, check=False, cwd=root,
                          env={**os.environ, "PYTHONPATH": checkout})


@pytest.mark.parametrize(("service", "flavor"), DEBUG_TWINS)
def test_the_debug_twin_adds_busybox_to_the_prod_image_and_nothing_else(project: Project,
                                                                       service: str, flavor: str
                                                                       ) -> None:
    preamble, tools, twin = dockerfile(project, service, f"prod-{flavor}-debug")
    assert preamble == [Instruction("ARG", f"PROD_IMAGE={service}:prod-{flavor}")]
    assert only(tools, "FROM") == ["ubuntu:24.04 AS busybox"]
    assert any("busybox-static" in args for args in only(tools, "RUN"))
    assert [i.keyword for i in twin] == ["FROM", "COPY", "ENV", "LABEL"]
    assert only(twin, "FROM") == ["${PROD_IMAGE}"]
    assert only(twin, "COPY") == ["--from=busybox /busybox /busybox"]
    assert only(twin, "ENV") == ["PATH=$PATH:/busybox"]  # appended: the app's own tools win


def test_only_shell_less_flavors_get_a_debug_twin(project: Project) -> None:
    names = {f.path.name for f in rendered_files(project.renderer, project.service("backend-flask"),
                                                 project.build_dir)}
    assert "Dockerfile.prod-distroless-debug" in names
    assert not any(name.startswith(("Dockerfile.dev-", "Dockerfile.prod-alpine-")) for name in names)


def test_debug_twin_with_dev_is_a_usage_error(project: Project) -> None:
    result = run_cli(project.root, "build", "backend-flask", "--variant", "dev", "--debug-twin")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: build: --debug-twin goes with --variant prod "
                                     "(dev has every tool already)")


def test_committed_renders_are_current(project: Project) -> None:
    result = run_cli(project.root, "render", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_check_fails_when_a_template_changes(project: Project, tmp_path: Path) -> None:
    for folder in ("images", "templates", "build"):
        shutil.copytree(project.root / folder, tmp_path / folder)
    macros = tmp_path / "templates" / "_partials" / "macros.j2"
    macros.write_text(macros.read_text().replace("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=0"))
    stale = run_cli(tmp_path, "render", "--check")
    assert stale.returncode == 1
    assert "stale: build/backend-flask/Dockerfile.dev" in stale.stderr
    assert run_cli(tmp_path, "render").returncode == 0
    assert run_cli(tmp_path, "render", "--check").returncode == 0


def test_render_check_fails_on_an_orphaned_render(project: Project, tmp_path: Path) -> None:
    """A render no service or flavor produces any more (a removed service's folder, a dropped
    flavor's Dockerfile) fails the check; `render` removes it."""
    for folder in ("images", "templates", "build"):
        shutil.copytree(project.root / folder, tmp_path / folder)
    service = project.services()[0].name
    leftovers = [tmp_path / "build" / service / "Dockerfile.prod-gone",
                 tmp_path / "build" / "removed-service" / "Dockerfile.dev"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("FROM scratch\n")
    orphaned = run_cli(tmp_path, "render", "--check")
    assert orphaned.returncode == 1
    for path in leftovers:
        assert f"orphaned: {path.relative_to(tmp_path)}" in orphaned.stderr
    assert run_cli(tmp_path, "render").returncode == 0
    assert not any(path.exists() for path in leftovers)
    assert run_cli(tmp_path, "render", "--check").returncode == 0


def test_a_template_typo_names_the_template_and_line(project: Project, tmp_path: Path) -> None:
    for folder in ("images", "templates", "build"):
        shutil.copytree(project.root / folder, tmp_path / folder)
    template = tmp_path / "templates" / "prod-distroless.Dockerfile.j2"
    lines = template.read_text().splitlines()
    lines.insert(5, "LABEL typo={{ servce.name }}")
    template.write_text("\n".join(lines) + "\n")
    before = (tmp_path / "build" / "backend-flask" / "Dockerfile.dev").read_text()
    result = run_cli(tmp_path, "render")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: templates/prod-distroless.Dockerfile.j2:6: 'servce' is undefined"
    assert (tmp_path / "build" / "backend-flask" / "Dockerfile.dev").read_text() == before


def env_of(stage: list[Instruction]) -> str:
    return " ".join(only(stage, "ENV"))


def shapes(project: Project) -> dict[str, list[list[Instruction]]]:
    """backend-flask as a real app often is: no health route, its own OpenTelemetry set-up, and
    its server only in prod.pip_packages."""
    spec = project.service("backend-flask")
    spec = replace(spec, health_path=None, otel=OtelOptions(mode="app"),
                   prod=replace(spec.prod, pip_packages=("gunicorn>=23", "uvicorn[standard]")))
    return {f.path.name.removeprefix("Dockerfile."): parse_stages(f.text)
            for f in rendered_files(project.renderer, spec, project.build_dir)
            if f.path.name.startswith("Dockerfile.") and f.path.suffix != ".dockerignore"}


def test_without_a_health_route_the_healthcheck_asks_the_port(project: Project) -> None:
    for label, stages in shapes(project).items():
        env = env_of(stages[-1])
        assert "OTEL_PYTHON_EXCLUDED_URLS" not in env, label
        if label in ("dev", "prod-distroless", "prod-alpine"):
            assert "IMAGEWRIGHT_HEALTH_URL=tcp://127.0.0.1:4567 " in env, label
    env = env_of(dockerfile(project, "backend-flask", "prod-distroless")[-1])
    assert "IMAGEWRIGHT_HEALTH_URL=http://127.0.0.1:4567/api/health " in env
    assert "OTEL_PYTHON_EXCLUDED_URLS=api/health" in env


def test_otel_mode_reaches_the_entrypoint(project: Project) -> None:
    for label in ("dev", "prod-distroless"):
        assert "IMAGEWRIGHT_OTEL_MODE=app " in env_of(shapes(project)[label][-1])
        assert "IMAGEWRIGHT_OTEL_MODE=auto " in env_of(dockerfile(project, "backend-flask", label)[-1])


def test_prod_pip_packages_install_with_the_requirements_in_every_variant(project: Project) -> None:
    for label, stages in shapes(project).items():
        if label.endswith("-debug"):
            continue
        runs = " ".join(only(stages[0], "RUN"))
        # Quoted for the shell: `>=` is not a redirection, `[...]` is not a glob.
        assert "-r /tmp/imagewright/requirements.txt 'gunicorn>=23' 'uvicorn[standard]' " in runs \
            or "-r requirements.txt 'gunicorn>=23' 'uvicorn[standard]' " in runs, (label, runs)


def test_every_process_names_itself_and_prod_moves_gunicorns_control_socket(
        project: Project) -> None:
    for service in SERVICES:
        dev = env_of(dockerfile(project, service, "dev")[-1])
        prod = env_of(dockerfile(project, service, "prod-distroless")[-1])
        for env in (dev, prod):
            assert "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS=process" in env
        assert "XDG_RUNTIME_DIR=/dev/shm" in prod and "XDG_RUNTIME_DIR" not in dev


def test_prod_ships_byte_code_only_unless_the_spec_keeps_the_sources(project: Project) -> None:
    """`prod.python_sources`: bytecode (default) compiles the venv to legacy .pyc and deletes its
    .py; keep leaves both and builds distroless on the base that has the stdlib's sources; dev
    always keeps them."""
    spec = project.service("backend-flask")
    kept = replace(spec, prod=replace(spec.prod, python_sources="keep"))
    sources_base = project.catalog.flavors["distroless"].base_with_sources
    for service, byte_code_only in ((spec, True), (kept, False)):
        files = {f.path.name.removeprefix("Dockerfile."): parse_stages(f.text)
                 for f in rendered_files(project.renderer, service, project.build_dir)
                 if f.path.name.startswith("Dockerfile.") and f.path.suffix != ".dockerignore"}
        for label in ("prod-distroless", "prod-alpine", "dev"):
            runs = " ".join(only(files[label][0], "RUN"))
            assert ("compileall" in runs and "/opt/venv/lib" in runs), label
            deletes = "-b /opt/venv/lib && find /opt/venv/lib -name '*.py' -delete" in runs
            assert deletes == (byte_code_only and label != "dev"), label
        final = files["prod-distroless"][-1]
        assert (only(final, "FROM") == [sources_base]) == (not byte_code_only)
        assert only(files["prod-alpine"][-1], "FROM") == ["alpine:3.20"]
