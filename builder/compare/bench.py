"""`make bench`: the comparison for every sample service, plus the toolkit's own speed.

Cold build, warm rebuild after a one-line source change (the dependency layers must stay cached)
and scan time per image, all measured in the same run as the comparisons.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Protocol

from builder.build.images import BuildProgress, ImageBuilder
from builder.compare.measure import CompareProgress, Comparison, Machine, compare_service, machine
from builder.core.clock import utc_timestamp
from builder.core.errors import FaultError, UserError
from builder.engine.client import Engine
from builder.project import Project
from builder.scan import scanner as scan
from builder.scan import trivy
from builder.spec.service import ServiceSpec


@dataclass(frozen=True)
class BuildStep:
    number: int
    instruction: str
    cached: bool


@dataclass(frozen=True)
class BuildTiming:
    image: str
    seconds: float
    steps: tuple[BuildStep, ...]  # every step but FROM

    @property
    def cached_steps(self) -> int:
        return sum(1 for step in self.steps if step.cached)

    @property
    def rebuilt(self) -> tuple[str, ...]:
        return tuple(step.instruction for step in self.steps if not step.cached)


@dataclass(frozen=True)
class ScanTiming:
    target: str  # <service> <dev|prod|prod-flavor>
    image: str
    seconds: float


@dataclass(frozen=True)
class Bench:
    created: str
    machine: Machine
    runs: int
    comparisons: tuple[Comparison, ...]
    cold_build: BuildTiming
    warm_rebuild: BuildTiming
    edited_file: str  # the source file the warm rebuild changed (in a temporary copy)
    dependencies_cached: bool  # every step before the first source COPY came from cache
    scans: tuple[ScanTiming, ...]
    scan_not_run: str


class _StepRecorder:
    """A BuildProgress that remembers which steps came from cache, and forwards to another."""

    def __init__(self, inner: BuildProgress) -> None:
        self.inner = inner
        self.steps: list[BuildStep] = []

    def start(self, title: str) -> None:
        self.steps = []
        self.inner.start(title)

    def step(self, number: int, total: int, instruction: str) -> None:
        # A FROM step names an image: it is never built, so it is neither cached nor rebuilt.
        if not instruction.upper().startswith("FROM "):
            self.steps.append(BuildStep(number, instruction, False))
        self.inner.step(number, total, instruction)

    def line(self, text: str) -> None:
        if self.steps and "Using cache" in text:
            self.steps[-1] = replace(self.steps[-1], cached=True)
        self.inner.line(text)

    def done(self, title: str, seconds: float) -> None:
        self.inner.done(title, seconds)


def time_builds(engine: Engine, project: Project, service: ServiceSpec,
                build_progress: BuildProgress, say: Callable[[str], None]
                ) -> tuple[BuildTiming, BuildTiming, str, bool]:
    """A cold prod build (no cache), then a rebuild after a one-line change to the app's source.

    Both run on a temporary copy of the service under another name, so neither the repository nor
    the real tags are touched; the copy's images are removed afterwards.
    """
    recorder = _StepRecorder(build_progress)
    name = f"{service.name}-bench"
    with tempfile.TemporaryDirectory(prefix="imagewright-bench-") as temp:
        folder = Path(temp) / name
        shutil.copytree(service.directory, folder, ignore=shutil.ignore_patterns("__pycache__"))
        copy = replace(service, name=name, directory=folder)
        real = ImageBuilder(engine, project, recorder, say)
        target = real.choose_flavors(service, None).build[0]
        cold_builder = ImageBuilder(engine, project, recorder, say, nocache=True)
        tags: list[str] = []
        try:
            result = cold_builder.build_target(copy, target, primary=False)
            tags.extend(result.tags)
            cold = BuildTiming(result.tags[0], round(result.seconds, 1), tuple(recorder.steps))
            edited = _edit_one_line(copy)
            result = real.build_target(copy, target, primary=False)
            tags.extend(result.tags)
            warm = BuildTiming(result.tags[0], round(result.seconds, 1), tuple(recorder.steps))
        finally:
            for tag in dict.fromkeys(tags):
                engine.remove_image(tag)
    sources = tuple(f"{project.layout.image.app}/{source}" for source in service.sources)
    first_source = next((step.number for step in warm.steps
                         if step.instruction.startswith("COPY") and
                         any(step.instruction.rstrip().endswith(path) for path in sources)),
                        len(warm.steps) + 1)
    dependencies_cached = all(step.cached for step in warm.steps if step.number < first_source)
    return cold, warm, edited, dependencies_cached


def _edit_one_line(service: ServiceSpec) -> str:
    """Append a comment to the first Python source file: the smallest real change to the app."""
    for source in service.sources:
        path = service.directory / source
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for candidate in candidates:
            if candidate.suffix == ".py":
                with candidate.open("a", encoding="utf-8") as handle:
                    handle.write(f"\n# bench edit {time.time_ns()}\n")
                return str(candidate.relative_to(service.directory))
    raise FaultError(f"{service.name}: no Python source file to edit for the warm rebuild")


class ScanListener(scan.ScanProgress, Protocol):
    def done(self, result: scan.ScanResult) -> None:
        """A target is scanned: the caller writes its reports (compare reads its scan.json)."""


def time_scans(engine: Engine, project: Project, services: Sequence[ServiceSpec],
               scan_progress: ScanListener) -> tuple[tuple[ScanTiming, ...], str]:
    """`make scan` for these services, timed per image; its scan.json files then feed compare."""
    timings: list[ScanTiming] = []
    try:
        targets = scan.plan(project, engine, services, None)
        options = scan.ScanOptions(cache_dir=trivy.cache_dir_for(project.cache_dir, None),
                                   reports_dir=project.reports_dir, today=date.today())
        for result in scan.scan_targets(project, targets, scan.start_session(options, engine),
                                        scan_progress):
            scan_progress.done(result)
            if result.target.image:
                timings.append(ScanTiming(result.target.title, result.target.image,
                                          round(result.seconds, 1)))
    except UserError as error:
        return (), error.message
    return tuple(timings), ""


def run_bench(engine: Engine, project: Project, services: Sequence[ServiceSpec],
              runs: int, progress: CompareProgress, build_progress: BuildProgress,
              scan_progress: ScanListener, say: Callable[[str], None]) -> Bench:
    scans, scan_not_run = time_scans(engine, project, services, scan_progress)
    builder = ImageBuilder(engine, project, build_progress, say)
    comparisons = tuple(compare_service(engine, project, builder, service, runs, progress)
                        for service in services)
    cold, warm, edited, cached = time_builds(engine, project, services[0], build_progress, say)
    return Bench(utc_timestamp(), machine(engine), runs, comparisons, cold, warm,
                 f"{services[0].name}/{edited}", cached, scans, scan_not_run)
