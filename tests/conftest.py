"""Shared fixtures. Integration fixtures build real images on the local engine, once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from hypothesis import settings

from builder.build.images import BuildResult, ImageBuilder
from builder.engine.client import Engine, connect
from builder.engine.containers import managed_containers
from builder.project import Project
from builder.spec.catalog import Target

ROOT = Path(__file__).resolve().parents[1]

# CI replays the same examples every run (reproducible); `HYPOTHESIS_PROFILE=deep` searches wider.
settings.register_profile("default", max_examples=300)
settings.register_profile("ci", max_examples=300, derandomize=True, print_blob=True)
settings.register_profile("deep", max_examples=3000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))
INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marked by folder: everything under tests/integration needs the engine (`-m "not integration"`)."""
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def project() -> Project:
    return Project(ROOT)


class QuietProgress:
    """Keeps the build log for assertion messages instead of printing it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def start(self, title: str) -> None:
        self.lines.append(f"== {title}")

    def step(self, number: int, total: int, instruction: str) -> None:
        self.lines.append(f"{number}/{total} {instruction}")

    def line(self, text: str) -> None:
        self.lines.append(text)

    def done(self, title: str, seconds: float) -> None:
        self.lines.append(f"done {title} {seconds:.1f}s")


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    engine = connect()
    yield engine
    assert managed_containers(engine) == [], "containers left behind"


@pytest.fixture(scope="session")
def docker_client(engine: Engine) -> docker.DockerClient:
    """The SDK itself, for tests that check the engine's own view of an image or container."""
    return engine.sdk


@pytest.fixture(scope="session")
def image_builder(engine: Engine, project: Project) -> ImageBuilder:
    return ImageBuilder(engine, project, QuietProgress(), lambda message: None)


@pytest.fixture(scope="session")
def built(image_builder: ImageBuilder, project: Project) -> dict[tuple[str, str], BuildResult]:
    """dev and the first available prod flavor of every service in images/, built for real.

    Layer caching makes this cheap after the first run on a machine.
    """
    results: dict[tuple[str, str], BuildResult] = {}
    for service in project.services():
        dev: Target = project.catalog.targets(service)[0]
        results[(service.name, "dev")] = image_builder.build_target(service, dev, primary=True)
        choice = image_builder.choose_flavors(service, None)
        results[(service.name, "prod")] = image_builder.build_target(service, choice.build[0],
                                                                     primary=True)
    return results


@pytest.fixture(scope="session")
def ubuntu_base(image_builder: ImageBuilder) -> str:
    """`ubuntu:24.04`, made available the way `make bases` does (bootstrapped when missing)."""
    return image_builder.bases.resolve("ubuntu:24.04").ref
