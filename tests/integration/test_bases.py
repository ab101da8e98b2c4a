"""Base images on a machine with no registry: bootstrapped for real, and honest when impossible."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from builder.build.images import ImageBuilder
from builder.engine.client import Engine
from builder.engine.containers import run_to_completion
from builder.naming import PROVENANCE_LABEL
from builder.project import Project

pytestmark = pytest.mark.integration
SCRATCH_REF = "imagewright-test/ubuntu-bootstrap:24.04"


def test_ubuntu_base_bootstraps_with_mmdebstrap(image_builder: ImageBuilder, project: Project,
                                                docker_client: docker.DockerClient, engine: Engine) -> None:
    """The fresh-machine path, into a throwaway tag so the real base stays as it is."""
    base = dataclasses.replace(project.catalog.bases["ubuntu:24.04"], ref=SCRATCH_REF)
    cached_keyring = project.cache_dir / "keyrings" / "ubuntu-archive-keyring.gpg"
    cached_keyring.unlink(missing_ok=True)  # exercise the keyring fetch too, where the host lacks it
    try:
        image_builder.bases.bootstrap(base)
        image = docker_client.images.get(SCRATCH_REF)
        assert image.labels[PROVENANCE_LABEL].startswith("mmdebstrap --variant=minbase noble")
        code, os_release = run_to_completion(engine, SCRATCH_REF, ["cat", "/etc/os-release"])
        assert code == 0 and 'VERSION_ID="24.04"' in os_release
        code, _ = run_to_completion(engine, SCRATCH_REF, ["apt-get", "--version"])
        assert code == 0, "the base must have apt for the dev image's installs"
        assert Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg").exists() or cached_keyring.exists()
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(SCRATCH_REF, force=True)


def test_alpine_availability_is_reported_as_it_is(image_builder: ImageBuilder) -> None:
    availability = image_builder.bases.availability("alpine:3.20")
    if image_builder.bases.local("alpine:3.20") is not None:
        assert availability.available and availability.how == "present locally"
    elif not availability.available:
        assert "no Alpine mirror" in availability.how
    else:
        assert availability.how == "pulled"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder", *args], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).resolve().parents[2])


def test_forcing_the_alpine_flavor_builds_it_or_fails_in_one_line(image_builder: ImageBuilder) -> None:
    result = run_cli("build", "backend-flask", "--variant", "prod", "--flavor", "alpine")
    if image_builder.bases.availability("alpine:3.20").available:
        assert result.returncode == 0 and "backend-flask:prod-alpine" in result.stdout
        return
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "FLAVOR=alpine: base image alpine:3.20 is not available on this machine" in result.stderr
    assert "Traceback" not in result.stderr


def test_build_prod_says_which_flavor_it_built_and_why(image_builder: ImageBuilder,
                                                      built: dict) -> None:
    result = run_cli("build", "backend-flask", "--variant", "prod")
    assert result.returncode == 0, result.stdout + result.stderr
    if not image_builder.bases.availability("alpine:3.20").available:
        assert "skipping prod flavor 'alpine'" in result.stdout
        assert "building prod flavor 'distroless' instead of the preferred 'alpine'" in result.stdout
        assert "backend-flask:prod-alpine" not in result.stdout
    assert "backend-flask:prod" in result.stdout
    assert "base ubuntu:24.04 is not pinned by digest" in result.stdout  # the repo pins none
