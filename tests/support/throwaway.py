"""Throwaway projects for integration tests: services made up for one test module, built for real
under tags unique to the run, and removed afterwards."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[2]


def project_root(root: Path, prefix: str, kinds: Iterable[str]) -> dict[str, str]:
    """`root` made a project (this checkout's templates and renders, no services yet); returns a
    service name unique to this run for each kind, `<prefix>-<8 hex>-<kind>`."""
    for folder in ("templates", "build"):
        shutil.copytree(ROOT / folder, root / folder)
    unique = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return {kind: f"{unique}-{kind}" for kind in kinds}


def remove_images(docker_client: docker.DockerClient, names: Iterable[str]) -> None:
    """Every tag of the named services' images; none may be left."""
    names = list(names)
    for name in names:
        for image in docker_client.images.list(name=name):
            for tag in image.tags:
                docker_client.images.remove(tag, noprune=False)
    assert not [name for name in names if docker_client.images.list(name=name)]
