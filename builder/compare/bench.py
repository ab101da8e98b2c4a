"""`make bench`: the comparison for every sample service, plus the toolkit's own speed.

Cold build, warm rebuild after a one-line source change (the dependency layers must stay cached),
the cold build of every image by the legacy builder and by BuildKit (one by one, and bake), the
rebuild after one dependency is added (pip's cache mount or none), and scan time per image, all
measured in the same run as the comparisons.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Protocol

from builder import naming
from builder.build.images import CACHED_LINE, BuildProgress, ImageBuilder
from builder.compare.measure import CompareProgress, Comparison, Machine, compare_service, machine
from builder.core.clock import utc_timestamp
from builder.core.errors import FaultError, UserError
from builder.engine.buildkit import BuilderChoice, bake, choose_builder, prune_cache_mounts
from builder.engine.client import Engine, EngineError
from builder.project import Project
from builder.render.dockerfiles import bake_file, rendered_files, write_files
from builder.scan import scanner as scan
from builder.scan import trivy
from builder.spec.service import SPEC_FILENAME, ServiceSpec


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
    dependencies_cached: bool  # every dependency step (apt, venv, pip) came from cache
    scans: tuple[ScanTiming, ...]
    scan_not_run: str
    build_all: BuildAll | None = None  # None: not run (BuildKit is not available here)
    build_all_not_run: str = ""


@dataclass(frozen=True)
class BuildAll:
    """Every service x (dev + every prod flavor available here), built cold three ways."""

    targets: tuple[str, ...]  # `<service> <label>`
    legacy_s: float  # the legacy builder, one image after another (as before BuildKit)
    buildkit_sequential_s: float  # BuildKit through the tool, one image after another
    buildkit_s: float  # BuildKit through `docker buildx bake` of every target at once
    dependency: str  # the requirement added for the rebuild below
    dependency_legacy_s: float  # rebuild of one prod image after adding it: no pip cache
    dependency_buildkit_s: float  # the same on BuildKit: pip's cache mount

    @property
    def ratio(self) -> float:
        return round(self.buildkit_s / self.legacy_s, 2) if self.legacy_s else 0.0


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
        if not _instruction(instruction).upper().startswith("FROM "):
            self.steps.append(BuildStep(number, instruction, False))
        self.inner.step(number, total, instruction)

    def line(self, text: str) -> None:
        if self.steps and text.startswith(CACHED_LINE):
            # BuildKit names the cached step (its stages run side by side); legacy means the last.
            named = text.removeprefix(CACHED_LINE).removeprefix(": ")
            index = next((i for i in range(len(self.steps) - 1, -1, -1)
                          if self.steps[i].instruction == named), len(self.steps) - 1)
            self.steps[index] = replace(self.steps[index], cached=True)
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
    dependencies_cached = all(step.cached for step in warm.steps if _installs(step.instruction))
    return cold, warm, edited, dependencies_cached


# What makes a step a dependency step: it installs packages, makes the venv or copies the
# requirements. BuildKit numbers steps per stage and runs stages side by side, so "every step before
# the first source COPY" is no rule there; these are the steps an app edit must never re-run.
_DEPENDENCY_WORDS = ("apt-get install", "apk add", "pip ", "-m venv", "requirements")


def _installs(instruction: str) -> bool:
    return any(word in instruction for word in _DEPENDENCY_WORDS)


def _instruction(step: str) -> str:
    """A step's Dockerfile instruction, without the `<stage>: ` BuildKit's steps are named with."""
    head, sep, rest = step.partition(": ")
    return rest if sep and " " not in head else step


# A small pure-Python distribution, for the rebuild after a dependency is added.
ADDED_DEPENDENCY = "six==1.17.0"
BENCH_SUFFIX = "-bench"


def time_build_all(engine: Engine, project: Project, services: Sequence[ServiceSpec],
                   build_progress: BuildProgress, say: Callable[[str], None]) -> BuildAll:
    """Cold builds of every service x (dev + every available prod flavor): no layer cache, empty
    cache mounts; legacy, BuildKit one by one, BuildKit's bake of all at once. Then one dependency
    added to the first service, and its prod image rebuilt by each builder.

    On a temporary copy of the project whose services are renamed `<service>-bench`, rendered
    there (Dockerfiles and bake file): no real tag or file is touched; its images are removed."""
    buildkit_choice = choose_builder()
    if buildkit_choice.buildx is None:
        raise UserError(f"BuildKit is not available here: {buildkit_choice.reason}")
    buildx = buildkit_choice.buildx
    legacy_choice = BuilderChoice(None, "the bench times the legacy builder")
    with tempfile.TemporaryDirectory(prefix="imagewright-bench-all-") as temp:
        copy = _bench_project(project, services, Path(temp))
        copies = copy.services()
        names = [service.name for service in copies]
        legacy = ImageBuilder(engine, copy, build_progress, say, nocache=True, choice=legacy_choice)
        # bake builds from the checkout as it is: a service whose requirements imagewright derives
        # (pyproject.toml, uv.lock, poetry.lock) has them only in the tool's own contexts, so the
        # three builders are timed on the services bake can build.
        plan = [(service, target) for service in copies if not service.dependencies.derived
                for target in [copy.catalog.targets(service)[0],
                               *legacy.choose_flavors(service, "all").build]]
        try:
            started = time.monotonic()
            for service, target in plan:
                legacy.build_target(service, target, primary=False)
            legacy_s = time.monotonic() - started

            sequential = ImageBuilder(engine, copy, build_progress, say, nocache=True,
                                      choice=buildkit_choice)
            prune_cache_mounts(buildx)
            started = time.monotonic()
            for service, target in plan:
                sequential.build_target(service, target, primary=False)
            sequential_s = time.monotonic() - started

            prune_cache_mounts(buildx)
            bake_targets = [naming.bake_target(service.name, target.label) for service, target in plan]
            build_progress.start(f"bake of {len(bake_targets)} targets")
            started = time.monotonic()
            for line in bake(buildx, copy.root, copy.build_dir / naming.BAKE_FILE, bake_targets,
                             nocache=True):
                build_progress.line(line)
            bake_s = time.monotonic() - started
            build_progress.done(f"bake of {len(bake_targets)} targets", bake_s)

            # One dependency more: every layer up to the requirements is cached for both builders,
            # the pip step re-runs; only BuildKit's has pip's cache.
            # A service declared by a plain requirements file: one line more is one dependency more.
            first = next(s for s, _ in plan if s.dependencies.is_requirements
                         and not s.dependencies.hashed)
            target = next(t for s, t in plan if s == first and t.flavor is not None)
            requirements = first.directory / first.dependencies.declared_in
            # The run's own mark beside it: BuildKit keeps its layer cache when the images go, and
            # an earlier bench's identical file would answer the pip step from that cache.
            requirements.write_text(requirements.read_text().rstrip("\n")
                                    + f"\n{ADDED_DEPENDENCY}  # bench run {time.time_ns()}\n")
            warm_legacy = ImageBuilder(engine, copy, build_progress, say, choice=legacy_choice)
            warm_buildkit = ImageBuilder(engine, copy, build_progress, say, choice=buildkit_choice)
            dependency_legacy = warm_legacy.build_target(first, target, primary=False).seconds
            dependency_buildkit = warm_buildkit.build_target(first, target, primary=False).seconds
        except EngineError as error:
            raise FaultError(f"bench build_all: {error.message}") from None
        finally:
            for name in names:
                for image_id in engine.images_named(name):
                    engine.remove_image(image_id, force=True)
    return BuildAll(tuple(f"{service.name} {target.label}" for service, target in plan),
                    round(legacy_s, 1), round(sequential_s, 1), round(bake_s, 1),
                    ADDED_DEPENDENCY, round(dependency_legacy, 1), round(dependency_buildkit, 1))


def _bench_project(project: Project, services: Sequence[ServiceSpec], root: Path) -> Project:
    """A copy of the project holding `services` as `<service>-bench`, rendered."""
    shutil.copytree(project.templates_dir, root / project.templates_dir.name)
    pins = project.build_dir / naming.PINS_FILE
    (root / project.build_dir.name).mkdir()
    if pins.is_file():
        shutil.copy2(pins, root / project.build_dir.name / naming.PINS_FILE)
    for service in services:
        folder = root / project.images_dir.name / f"{service.name}{BENCH_SUFFIX}"
        shutil.copytree(service.directory, folder, ignore=shutil.ignore_patterns("__pycache__"))
        spec = folder / SPEC_FILENAME
        spec.write_text(re.sub(rf"^name:\s*{re.escape(service.name)}\s*$",
                               f"name: {service.name}{BENCH_SUFFIX}", spec.read_text(), count=1,
                               flags=re.M))
    copy = Project(root)
    files = [f for service in copy.services()
             for f in rendered_files(copy.renderer, service, copy.build_dir)]
    write_files([*files, bake_file(copy.renderer, copy.services(), copy.build_dir)])
    return copy


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
    try:
        build_all: BuildAll | None = time_build_all(engine, project, services, build_progress, say)
        build_all_not_run = ""
    except UserError as error:
        build_all, build_all_not_run = None, error.message
    return Bench(utc_timestamp(), machine(engine), runs, comparisons, cold, warm,
                 f"{services[0].name}/{edited}", cached, scans, scan_not_run, build_all,
                 build_all_not_run)
