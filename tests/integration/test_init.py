"""`init` on each sample service's source, moved outside `images/` into a temp project: the spec it
writes builds (dev and the first available prod flavor) and verifies, on the real engine. And a
lock file whose hash was tampered with fails the build clearly, leaving no tag.

Every image here has a unique name of its own and is removed afterwards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from packaging.utils import canonicalize_name

from builder.engine.client import Engine
from builder.engine.filesystem import read_file
from builder.spec.dependencies import poetry_requirements
from tests.support.samples import SERVICES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
POETRY_APP = ROOT / "tests" / "fixtures" / "poetry-app"


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder", "-C", str(root), *args],
                          capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "300"})


@pytest.fixture
def temp_project(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[tuple[Path, str]]:
    """A project with the real templates and no services; a unique name prefix whose images are
    all removed afterwards."""
    root = tmp_path / "project"
    for folder in ("templates", "build"):
        shutil.copytree(ROOT / folder, root / folder)
    (root / "images").mkdir()
    prefix = f"init-{uuid.uuid4().hex[:8]}"
    try:
        yield root, prefix
    finally:
        for image in docker_client.images.list():
            for tag in image.tags:
                if tag.startswith(prefix):
                    docker_client.images.remove(tag, noprune=False)
        assert not [tag for image in docker_client.images.list() for tag in image.tags
                    if tag.startswith(prefix)]


@pytest.mark.parametrize("service", SERVICES)
def test_init_on_a_samples_source_builds_and_verifies(service: str, temp_project: tuple[Path, str],
                                                      tmp_path: Path) -> None:
    root, prefix = temp_project
    app = tmp_path / "apps" / service  # outside images/: init copies it in
    shutil.copytree(ROOT / "images" / service, app, ignore=shutil.ignore_patterns("image.yaml"))
    name = f"{prefix}-{service.removeprefix('backend-')}"
    written = cli(root, "init", str(app), "--name", name)
    assert written.returncode == 0, written.stdout + written.stderr
    assert (root / "images" / name / "image.yaml").is_file()
    for variant in ("dev", "prod"):
        built = cli(root, "build", name, "--variant", variant)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr
    verified = cli(root, "verify", name, "--runs", "1")
    assert verified.returncode == 0, verified.stdout[-4000:] + verified.stderr
    assert verified.stdout.count(f"✔ resource service.name = {name}") == 2  # dev and prod


def test_a_tampered_lock_hash_fails_the_build_clearly(temp_project: tuple[Path, str],
                                                      docker_client: docker.DockerClient) -> None:
    root, prefix = temp_project
    name = f"{prefix}-tampered"
    service = root / "images" / name
    shutil.copytree(ROOT / "images" / "backend-django", service)
    spec = service / "image.yaml"
    spec.write_text(spec.read_text().replace("name: backend-django", f"name: {name}"))
    lock = service / "uv.lock"
    text = lock.read_text()
    # Every file hash of Django's entry: whichever file pip picks no longer matches.
    entry = re.search(r'\[\[package\]\]\nname = "django"\n.*?(?=\n\[\[package\]\])', text, re.S)
    assert entry is not None
    tampered = re.sub(r"sha256:([0-9a-f])", lambda m: "sha256:" + ("0" if m[1] != "0" else "1"),
                      entry[0])
    assert tampered != entry[0]
    lock.write_text(text.replace(entry[0], tampered))
    result = cli(root, "build", name, "--variant", "prod")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr
    assert f"error: build of {name} prod-distroless failed at " in result.stderr
    assert "--require-hashes" in result.stderr
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in result.stderr
    assert re.search(r"django==5\.2\.\d+ from https://", result.stderr), result.stderr
    assert "does not match the hash its lock records" in result.stderr
    assert "Traceback" not in result.stderr
    assert docker_client.images.list(name=name) == []


@pytest.mark.parametrize("form", ["poetry.lock", "pyproject.toml"])
def test_a_pyproject_service_builds_with_its_lock_or_resolved_once(
        form: str, temp_project: tuple[Path, str], engine: Engine) -> None:
    """The Flask sample's code declared by the Poetry fixture's pyproject.toml: with its
    poetry.lock, the image has exactly the locked versions; without it, pip resolves the PEP 621
    dependencies once and the image records what it got."""
    root, prefix = temp_project
    name = f"{prefix}-{form.split('.')[0]}"
    service = root / "images" / name
    shutil.copytree(ROOT / "images" / "backend-flask", service,
                    ignore=shutil.ignore_patterns("requirements.txt"))
    shutil.copy(POETRY_APP / "pyproject.toml", service)
    deps = "pyproject: pyproject.toml" + ("\nlock: poetry.lock" if form == "poetry.lock" else "")
    if form == "poetry.lock":
        shutil.copy(POETRY_APP / "poetry.lock", service)
    spec = service / "image.yaml"
    spec.write_text(spec.read_text().replace("name: backend-flask", f"name: {name}")
                    .replace("requirements: requirements.txt", deps))
    built = cli(root, "build", name, "--variant", "prod")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr
    lock = (read_file(engine, f"{name}:prod", "/opt/venv/requirements.lock") or b"").decode()
    installed = {canonicalize_name(line.split("==")[0]): line.split("==")[1]
                 for line in lock.splitlines() if "==" in line}
    if form == "poetry.lock":
        locked = poetry_requirements(POETRY_APP / "poetry.lock", "poetry.lock")
        for entry in locked:
            package, version = entry.split(" ", 1)[0].split("==")
            assert installed.get(canonicalize_name(package)) == version, (package, installed)
    else:
        assert {"flask", "gunicorn"} <= set(installed)
        assert installed["flask"].startswith("3.1.")  # `flask>=3.1,<3.2`, resolved once by pip
    assert "pytest" not in installed  # the dev group is never installed
