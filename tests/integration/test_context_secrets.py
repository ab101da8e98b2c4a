"""A real build of a service whose source folders hold planted secrets at depth: the build refuses
naming the files only their content gives away, the ignore rules keep the rest out of the context,
and once the refused files are gone (or one is allowed) neither dev nor prod holds any of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import docker
import docker.errors
import pytest

from builder.build.images import ImageBuilder
from builder.build.secrets import ContextSecretsError
from builder.compare.measure import build_naive
from builder.engine.client import Engine
from builder.engine.filesystem import exported_files
from builder.project import Project
from tests.support.planted import FOUND_BY_CONTENT, IGNORED_BY_NAME, plant

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SOURCES = "services"  # a source folder of backend-flask: copied whole into dev and prod
ALLOWED = f"{SOURCES}/pkg/tests/fixture_token.txt"


@pytest.fixture
def planted_service(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[tuple[Path, str]]:
    """A temp project holding a copy of backend-flask under a unique name, secrets planted in it;
    every image of that name is removed afterwards."""
    name = f"ctxsecrets-{uuid.uuid4().hex[:10]}"
    for folder in ("templates", "build"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    service = tmp_path / "images" / name
    shutil.copytree(ROOT / "images" / "backend-flask", service)
    spec = service / "image.yaml"
    spec.write_text(spec.read_text().replace("name: backend-flask", f"name: {name}"))
    plant(service, IGNORED_BY_NAME)  # at the top of the service folder: never in the context
    plant(service / SOURCES, IGNORED_BY_NAME)  # inside a source folder, at depth
    plant(service / SOURCES, {path: template for path, (template, _) in FOUND_BY_CONTENT.items()})
    try:
        yield tmp_path, name
    finally:
        for image in docker_client.images.list(name=name):
            for tag in image.tags:
                docker_client.images.remove(tag, noprune=False)
        assert docker_client.images.list(name=name) == []


class NoProgress:
    """The refusal comes before any build step: there is no log to keep."""

    def start(self, title: str) -> None: ...
    def step(self, number: int, total: int, instruction: str) -> None: ...
    def line(self, text: str) -> None: ...
    def done(self, title: str, seconds: float) -> None: ...


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder", "-C", str(root), *args],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "COLUMNS": "300"})


def app_files(engine: Engine, image: str) -> tuple[set[str], set[str]]:
    """Regular files of the exported filesystem: under /app/services (byte code aside), and all."""
    every = {member.name for member in exported_files(engine, image) if member.isfile()}
    sources = {name.removeprefix(f"app/{SOURCES}/") for name in every
               if name.startswith(f"app/{SOURCES}/") and "__pycache__" not in name}
    return sources, every


def test_planted_secrets_never_reach_dev_or_prod(planted_service: tuple[Path, str],
                                                 docker_client: docker.DockerClient,
                                                 engine: Engine) -> None:
    root, name = planted_service
    service = root / "images" / name

    # 1. Refused before anything is built: one line per file found, the ignored ones not listed.
    refused = cli(root, "build", name, "--variant", "dev")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    header, *lines = refused.stderr.strip().splitlines()
    assert header.startswith(f"error: build context of {name} refused: secrets in "
                             f"{len(FOUND_BY_CONTENT)} files of images/{name}"), header
    assert sorted(line.split(":")[0].strip() for line in lines) == sorted(
        f"{SOURCES}/{path}" for path in FOUND_BY_CONTENT), refused.stderr
    for path, (_, rule) in FOUND_BY_CONTENT.items():
        assert f"  {SOURCES}/{path}: {rule} (" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert docker_client.images.list(name=name) == []

    # 2. The refused files are dealt with: all removed but one, which an allow entry lets through.
    for path in FOUND_BY_CONTENT:
        if f"{SOURCES}/{path}" != ALLOWED:
            (service / SOURCES / path).unlink()
    expires = date.today() + timedelta(days=30)
    with (service / "image.yaml").open("a") as spec:
        spec.write(f"context:\n  allow_secrets:\n    - path: {ALLOWED}\n"
                   f"      reason: revoked token kept as a parser fixture\n"
                   f"      expires: {expires:%Y-%m-%d}\n")
    for variant in ("dev", "prod"):
        result = cli(root, "build", name, "--variant", variant)
        assert result.returncode == 0, result.stdout + result.stderr
        assert (f"context: {ALLOWED} is sent although it holds github-pat, allowed by "
                f"images/{name}/image.yaml:") in result.stdout
        assert f"until {expires:%Y-%m-%d}: revoked token kept as a parser fixture" in result.stdout

    # 3. What the images hold: the sample's sources and the allowed file, nothing planted.
    files = ROOT / "templates" / "files"  # what the image's runtime folder holds, at any depth
    runtime = {path.relative_to(files).as_posix() for path in files.rglob("*")
               if path.is_file() and "__pycache__" not in path.parts}
    sample = ROOT / "images" / "backend-flask" / SOURCES
    expected = {path.relative_to(sample).as_posix() for path in sample.rglob("*")
                if path.is_file() and "__pycache__" not in path.parts}
    for variant in ("dev", "prod"):
        sources, every = app_files(engine, f"{name}:{variant}")
        assert sources == expected | {ALLOWED.removeprefix(f"{SOURCES}/")}, \
            (variant, sorted(sources))
        # imagewright's runtime files are its own: the planted `.imagewright/runtime/planted.py`
        # (top of the folder and at depth) shadowed nothing.
        assert {n.removeprefix("opt/imagewright/") for n in every
                if n.startswith("opt/imagewright/")} == runtime, variant
        assert not [n for n in every if n.endswith("planted.py")], variant


def test_naive_baseline_context_is_scanned_too(planted_service: tuple[Path, str],
                                               docker_client: docker.DockerClient,
                                               engine: Engine) -> None:
    """The naive baseline sends the whole folder (no ignore rules): its scan refuses the keys that
    only the ignore rules keep out of real builds, and no `<service>:naive` is made."""
    root, name = planted_service
    project = Project(root)
    builder = ImageBuilder(engine, project, NoProgress(), lambda text: None)
    with pytest.raises(ContextSecretsError) as caught:
        build_naive(builder, project, project.service(name))
    listed = {line.split(":")[0].strip() for line in caught.value.message.splitlines()[1:]}
    assert {"deep/a/b/id_rsa", "conf/server.key", f"{SOURCES}/deep/a/b/id_rsa",
            f"{SOURCES}/cfg/.aws/credentials"} <= listed
    assert {f"{SOURCES}/{path}" for path in FOUND_BY_CONTENT} <= listed
    assert docker_client.images.list(name=name) == []
