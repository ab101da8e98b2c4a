"""BuildKit without an engine: the two forms of one template, the ignore file bake reads, the bake
file's targets and groups, the builder choice and the reading of BuildKit's plain progress."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from builder import naming
from builder.build.context import context_paths
from builder.build.images import CACHED_LINE, BuildkitLog
from builder.core.errors import UserError
from builder.engine.buildkit import BUILDER_ENV, BUILDX_ENV, choose_builder, find_buildx
from builder.engine.client import EngineError, dockerignore_matches
from builder.project import Project
from builder.render.bake import bake_definition
from tests.support.planted import IGNORED_BY_NAME, plant
from tests.support.samples import PROD_TARGETS, SERVICES
from tests.unit.test_render import parse_stages, run_cli

ROOT = Path(__file__).resolve().parents[2]


def both_forms(project: Project, service: str, label: str) -> tuple[str, str]:
    spec = project.service(service)
    target = next(t for t in project.catalog.targets(spec) if t.label == label)
    return (project.renderer.dockerfile(spec, target, buildkit=True),
            project.renderer.dockerfile(spec, target, buildkit=False))


def labels_of(service: str) -> list[str]:
    return ["dev", *(f"prod-{flavor}" for name, flavor in PROD_TARGETS if name == service)]


@pytest.mark.parametrize("service", SERVICES)
def test_committed_render_is_the_buildkit_form(project: Project, service: str) -> None:
    for label in labels_of(service):
        buildkit, _ = both_forms(project, service, label)
        assert naming.dockerfile_path(project.build_dir, service, label).read_text() == buildkit


@pytest.mark.parametrize("service", SERVICES)
def test_the_ca_is_a_secret_mount_on_buildkit_and_copied_only_on_legacy(project: Project,
                                                                        service: str) -> None:
    layout = project.layout
    for label in labels_of(service):
        buildkit, legacy = both_forms(project, service, label)
        assert layout.context.build_ca not in buildkit
        assert "# syntax=" not in buildkit  # the engine's built-in frontend: no registry needed
        pip_steps = [i for stage in parse_stages(buildkit) for i in stage
                     if i.keyword == "RUN" and "pip --python" in i.args]
        assert pip_steps, label
        for step in pip_steps:  # every step that reaches PyPI has the CA, and pip's cache
            assert (f"--mount=type=secret,id={layout.context.build_ca_secret},"
                    f"target={layout.image.scratch}/ca-bundle.pem,required=true") in step.args
            assert f"--mount=type=cache,target={layout.image.pip_cache}" in step.args
        assert f"COPY {layout.context.build_ca} {layout.image.scratch}/ca-bundle.pem" in legacy
        assert "--mount=" not in legacy and "PIP_NO_CACHE_DIR=1" in legacy


def without_builder_specifics(text: str) -> list[tuple[str, str]]:
    """Instructions with what differs between the builders taken out: the legacy CA COPY, pip's
    cache setting and RUN's mounts."""
    kept: list[tuple[str, str]] = []
    for stage in parse_stages(text):
        for instruction in stage:
            if instruction.keyword == "COPY" and instruction.args.endswith("/ca-bundle.pem"):
                continue
            args = re.sub(r"--mount=\S+ ", "", instruction.args)
            args = re.sub(r"PIP_(NO_)?CACHE_DIR=\S+ ", "", args)
            kept.append((instruction.keyword, args))
    return kept


@pytest.mark.parametrize("service", SERVICES)
def test_both_forms_differ_only_in_the_venv_stage_mounts(project: Project, service: str) -> None:
    """One template, two outputs: same stages, same steps, the final stage the very same text."""
    for label in labels_of(service):
        buildkit, legacy = both_forms(project, service, label)
        assert parse_stages(buildkit)[-1] == parse_stages(legacy)[-1], label
        assert without_builder_specifics(buildkit) == without_builder_specifics(legacy), label
        assert buildkit != legacy


def test_bake_ignore_file_sends_what_the_tools_context_sends(tmp_path: Path, project: Project) -> None:
    """The .dockerignore beside each Dockerfile, applied to the project root (as bake sends it),
    keeps exactly the service folder's files the service's .dockerignore keeps, and the run-time
    files: nothing of other services, the venv, reports or planted secrets."""
    root = tmp_path / "project"
    for service in SERVICES:
        (root / "images" / service).mkdir(parents=True)
        (root / "images" / service / "app.py").write_text("print('hi')\n")
        (root / "images" / service / "image.yaml").write_text("name: x\n")
        plant(root / "images" / service / "pkg", IGNORED_BY_NAME)
        plant(root / "images" / service, IGNORED_BY_NAME)
    for folder in ("templates/files", ".venv/bin", "reports/x", ".git", "build/x"):
        (root / folder).mkdir(parents=True)
        (root / folder / "f.py").write_text("x = 1\n")
    for service in SERVICES:
        spec = project.service(service)
        patterns = [line.strip() for line in project.renderer.dockerignore(spec).splitlines()
                    if line.strip() and not line.startswith("#")]
        sent = {path for path in dockerignore_matches(root, patterns) if (root / path).is_file()}
        service_dir = project.layout.context.service_dir(service)
        expected = {f"{service_dir}/{path}" for path in
                    context_paths(root / service_dir, project.renderer.dockerignore())
                    if (root / service_dir / path).is_file()}
        expected |= {f"{project.layout.context.runtime}/f.py"}
        assert sent == expected
        assert f"{service_dir}/app.py" in sent and f"{service_dir}/image.yaml" not in sent


def test_bake_file_has_a_target_per_service_and_flavor(project: Project) -> None:
    definition = json.loads((project.build_dir / naming.BAKE_FILE).read_text())
    services = project.services()
    expected = {naming.bake_target(spec.name, target.label): (spec, target)
                for spec in services for target in project.catalog.targets(spec)}
    assert set(definition["target"]) == set(expected)
    for name, (spec, target) in expected.items():
        entry = definition["target"][name]
        assert entry["context"] == "."
        assert (project.root / entry["dockerfile"]).is_file()
        assert (project.root / (entry["dockerfile"] + naming.DOCKERIGNORE)).is_file()
        labels = [target.label] + (["prod"] if target.flavor == spec.prod.flavors[0] else [])
        revision = "${" + project.layout.build_args.revision + "}"
        assert entry["tags"] == list(naming.build_tags(spec.name, labels, revision))
        assert entry["secret"] == [f"id={project.layout.context.build_ca_secret},"
                                   f"src=${{{naming.BUILD_CA_ENV}}}"]
    groups = {name: group["targets"] for name, group in definition["group"].items()}
    assert groups["default"] == ["dev", "prod"]
    assert groups["dev"] == [naming.bake_target(spec.name, "dev") for spec in services]
    assert groups["prod"] == [naming.bake_target(spec.name, f"prod-{spec.prod.flavors[0]}")
                              for spec in services]
    for spec in services:
        assert set(groups[spec.name]) == {name for name, (owner, _) in expected.items()
                                          if owner.name == spec.name}


def test_bake_refuses_a_service_named_like_a_group(project: Project) -> None:
    spec = replace(project.services()[0], name="prod")
    with pytest.raises(UserError, match="'prod' is also the name of a bake group"):
        bake_definition(project.catalog, project.layout, [spec], Path("build"))


def test_builder_choice_falls_back_and_says_why(tmp_path: Path) -> None:
    assert choose_builder({BUILDER_ENV: "legacy"}).buildx is None
    missing = choose_builder({BUILDX_ENV: str(tmp_path / "docker-buildx")})
    assert missing.buildx is None and "docker-buildx cannot run" in missing.reason
    broken = tmp_path / "broken-buildx"
    broken.write_text("#!/bin/sh\necho 'no daemon here' >&2\nexit 1\n")
    broken.chmod(0o755)
    failing = choose_builder({BUILDX_ENV: str(broken)})
    assert failing.buildx is None and "no daemon here" in failing.reason
    with pytest.raises(EngineError, match="IMAGEWRIGHT_BUILDER=buildkit, but BuildKit cannot be used"):
        choose_builder({BUILDER_ENV: "buildkit", BUILDX_ENV: str(broken)})


def test_buildx_is_found_on_path_before_plugin_folders(tmp_path: Path) -> None:
    plugin = tmp_path / "docker-buildx"
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    assert find_buildx({"PATH": str(tmp_path)}) == str(plugin)
    assert find_buildx({BUILDX_ENV: "/x/docker-buildx", "PATH": str(tmp_path)}) == "/x/docker-buildx"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def start(self, title: str) -> None: ...

    def step(self, number: int, total: int, instruction: str) -> None:
        self.events.append(("step", f"{number}/{total}", instruction))

    def line(self, text: str) -> None:
        self.events.append(("line", text))

    def done(self, title: str, seconds: float) -> None: ...


# The shape of `buildx build --progress plain` on this engine's BuildKit (v0.8), stages interleaved.
PLAIN = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#4 [venv 1/6] FROM docker.io/library/ubuntu:24.04
#5 [stage-2 1/5] FROM docker.io/imagewright/distroless-python:3.12-ubuntu24.04
#6 [venv 2/6] RUN apt-get update && apt-get install -y python3
#6 CACHED
#7 [venv 5/6] RUN --mount=type=secret,id=imagewright_build_ca pip install -r r.txt
#7 0.512 Collecting flask
#5 [stage-2 1/5] FROM docker.io/imagewright/distroless-python:3.12-ubuntu24.04
#7 DONE 12.1s
#9 exporting to image
#9 writing image sha256:0d6d44431d36 done
"""


def test_plain_progress_becomes_steps_and_named_cache_lines() -> None:
    recorder = Recorder()
    log = BuildkitLog(recorder)
    for line in PLAIN.splitlines():
        log.feed(line)
    steps = [event for event in recorder.events if event[0] == "step"]
    assert steps == [
        ("step", "1/6", "venv: FROM docker.io/library/ubuntu:24.04"),
        ("step", "1/5", "stage-2: FROM docker.io/imagewright/distroless-python:3.12-ubuntu24.04"),
        ("step", "2/6", "venv: RUN apt-get update && apt-get install -y python3"),
        ("step", "5/6", "venv: RUN --mount=type=secret,id=imagewright_build_ca pip install -r r.txt"),
    ]  # the repeated header of #5 is no new step
    assert ("line", f"{CACHED_LINE}: venv: RUN apt-get update && apt-get install -y python3") \
        in recorder.events
    assert ("line", "0.512 Collecting flask") in recorder.events
    assert log.step_of("#7 ERROR: process did not complete") == steps[-1][2]


def test_bake_command_and_render_check_keep_the_bake_file_current(project: Project,
                                                                  tmp_path: Path) -> None:
    """A new service is a stale bake file for `render --check`; `bake` (or `render`) writes it."""
    for folder in ("images", "templates", "build"):
        shutil.copytree(project.root / folder, tmp_path / folder)
    spec = tmp_path / "images" / "second-flask" / "image.yaml"
    shutil.copytree(tmp_path / "images" / "backend-flask", spec.parent)
    spec.write_text(spec.read_text().replace("name: backend-flask", "name: second-flask"))
    assert run_cli(tmp_path, "render", "second-flask").returncode == 0  # its Dockerfiles only
    stale = run_cli(tmp_path, "render", "--check")
    assert stale.returncode == 1 and f"stale: build/{naming.BAKE_FILE}" in stale.stderr
    baked = run_cli(tmp_path, "bake")
    assert baked.returncode == 0, baked.stderr
    # Every service (the project's and the new one): dev and each prod flavor.
    targets = sum(1 + len(service.prod.flavors) for service in project.services()) + 3
    assert f"wrote build/{naming.BAKE_FILE}: {targets} targets;" in baked.stdout
    definition = json.loads((tmp_path / "build" / naming.BAKE_FILE).read_text())
    assert "second-flask-dev" in definition["group"]["dev"]["targets"]
    assert run_cli(tmp_path, "render", "--check").returncode == 0
    (tmp_path / "build" / naming.BAKE_FILE).write_text("{}\n")
    assert "stale: build/docker-bake.json" in run_cli(tmp_path, "render", "--check").stderr
