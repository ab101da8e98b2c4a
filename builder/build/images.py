"""Build images on BuildKit (through buildx) or, as a fallback, the legacy builder: context, streamed
log, tags only after success."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from builder import naming
from builder.build.bases import Availability, BaseMissingError, BaseResolver, ResolvedBase
from builder.build.context import (
    build_context,
    build_trust_bundle,
    dependency_files,
    dockerfile_only,
    runtime_files,
)
from builder.build.secrets import check_context
from builder.core.clock import utc_timestamp
from builder.core.errors import FaultError, UserError
from builder.engine.buildkit import BuilderChoice, BuildkitBuild, BuildkitRequest, choose_builder
from builder.engine.client import Engine, EngineError
from builder.engine.containers import run_to_completion
from builder.engine.filesystem import find_executable
from builder.inspect.config import config_findings
from builder.inspect.surface import python_version
from builder.project import Project
from builder.spec.catalog import Target
from builder.spec.parity import same_python
from builder.spec.service import ServiceSpec

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")
# BuildKit's plain progress: `#7 [venv 3/7] RUN pip …`, `#7 CACHED`, `#7 0.412 <output>`, `#7 DONE 2.1s`.
_VERTEX = re.compile(r"^#(\d+) (.*)$")
_BUILDKIT_STEP = re.compile(r"^\[(?:(\S+) )?(\d+)/(\d+)\] (.*)$")
# What the legacy builder prints for a step it took from cache; BuildKit's `CACHED` is passed on
# the same way, naming the step (BuildKit runs stages side by side: the last step is not the one).
CACHED_LINE = " ---> Using cache"


class BuildProgress(Protocol):
    def start(self, title: str) -> None: ...
    def step(self, number: int, total: int, instruction: str) -> None: ...
    def line(self, text: str) -> None: ...
    def done(self, title: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class BuildResult:
    service: str
    target: Target
    image_id: str
    tags: tuple[str, ...]
    seconds: float
    size: int
    base: ResolvedBase


@dataclass(frozen=True)
class PythonParity:
    """The Python versions a service's dev and prod images were built with."""

    service: str
    dev: str
    prod: str

    @property
    def ok(self) -> bool:
        return same_python(self.dev, self.prod)


@dataclass(frozen=True)
class FlavorChoice:
    """Which prod flavors will be built, and why each preferred one that won't be was skipped."""

    build: tuple[Target, ...]
    skipped: tuple[tuple[str, str], ...]


class BuildFailedError(FaultError):
    pass


class BuildkitLog:
    """BuildKit's plain progress lines → BuildProgress calls: a step per `[stage i/n] INSTRUCTION`,
    a cache line per `CACHED`, the rest as lines. Pure: it only reads lines."""

    def __init__(self, progress: BuildProgress) -> None:
        self.progress = progress
        self.steps: dict[str, str] = {}  # vertex number → its step, for CACHED and failures
        self.last_step = ""

    def feed(self, line: str) -> None:
        vertex = _VERTEX.match(line)
        if vertex is None:
            if line.strip():
                self.progress.line(line)
            return
        number, rest = vertex[1], vertex[2]
        if (step := _BUILDKIT_STEP.match(rest)) and number in self.steps:
            return  # the step's header again, as plain progress repeats it when output interleaves
        if step:
            stage, index, total = step[1], int(step[2]), int(step[3])
            instruction = " ".join(step[4].split())  # continuation lines leave runs of spaces
            title = instruction if stage is None else f"{stage}: {instruction}"
            self.steps[number] = title
            self.last_step = title
            self.progress.step(index, total, title)
        elif rest == "CACHED" and number in self.steps:
            self.progress.line(f"{CACHED_LINE}: {self.steps[number]}")
        else:
            self.progress.line(rest)

    def step_of(self, line: str) -> str:
        vertex = _VERTEX.match(line)
        return self.steps.get(vertex[1], "") if vertex else ""


class CommandNotInImageError(UserError):
    """The image was built, but the command it is to run is not in it: it could never start."""


# `python -m <module>`: the module must be importable in the image, as the interpreter will ask.
_FIND_MODULE = ("import importlib.util, sys; "
                "sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 3)")


class ImageBuilder:
    def __init__(self, engine: Engine, project: Project, progress: BuildProgress,
                 say: Callable[[str], None], *, nocache: bool = False,
                 choice: BuilderChoice | None = None) -> None:
        self.engine = engine
        self.nocache = nocache  # a cold build, as the benchmark times it
        self._choice = choice
        self._announced = False
        self.project = project
        self.progress = progress
        self.say = say
        self.bases = BaseResolver(engine, project, self.build_recipe, say)

    # ---- choosing what to build --------------------------------------------------------------

    def choose_flavors(self, service: ServiceSpec, requested: str | None) -> FlavorChoice:
        """`None`: the first available flavor in the service's order; "all"; or one by name."""
        catalog = self.project.catalog
        if requested not in (None, "all"):
            if requested not in service.prod.flavors:
                raise UserError(f"{service.spec_file}: prod.flavors: {requested!r} is not one of "
                                f"this service's flavors ({', '.join(service.prod.flavors)})")
            target = catalog.flavor(service, requested)
            if missing := self._missing_base(target):
                raise BaseMissingError(f"FLAVOR={requested}: base image {missing.ref} is not "
                                       f"available on this machine: {missing.how}")
            return FlavorChoice((target,), ())
        chosen: list[Target] = []
        skipped: list[tuple[str, str]] = []
        for name in service.prod.flavors:
            target = catalog.flavor(service, name)
            if missing := self._missing_base(target):
                skipped.append((name, f"base image {missing.ref} is not available on this "
                                      f"machine: {missing.how}"))
                continue
            chosen.append(target)
            if requested is None:
                break
        if not chosen:
            reasons = "; ".join(f"{name}: {why}" for name, why in skipped)
            raise BaseMissingError(f"{service.name}: no prod flavor can be built here ({reasons})")
        return FlavorChoice(tuple(chosen), tuple(skipped))

    def _missing_base(self, target: Target) -> Availability | None:
        """The first of the target's images (final base, then builder) this machine can't get."""
        for ref in dict.fromkeys((target.base, target.builder)):
            availability = self.bases.availability(ref)
            if not availability.available:
                return availability
        return None

    # ---- building ----------------------------------------------------------------------------

    @property
    def choice(self) -> BuilderChoice:
        """BuildKit when buildx works here, else the legacy builder (decided once, on first use)."""
        if self._choice is None:
            try:
                self._choice = choose_builder()
            except EngineError as error:
                raise BuildFailedError(error.message) from None
        return self._choice

    @property
    def buildkit(self) -> bool:
        return self.choice.buildkit

    def _announce(self) -> None:
        """Say once which builder builds, plainly when it is the deprecated legacy one."""
        if self._announced:
            return
        self._announced = True
        if self.buildkit:
            self.say(f"builder: BuildKit ({self.choice.reason})")
        else:
            self.say(f"! builder: the legacy builder (deprecated by Docker), not BuildKit: "
                     f"{self.choice.reason}. Stages build one after another, pip's cache is not "
                     "kept and the build CA is COPY'd into the venv stage (never into a final "
                     "image)")

    def build_target(self, service: ServiceSpec, target: Target, *, primary: bool) -> BuildResult:
        """Build one target; `primary` also gives it the plain `<service>:<variant>` tags."""
        started = time.monotonic()
        layout = self.project.layout
        sha, dirty = self.project.revision()
        context = self._context(service, target)
        base = self.bases.resolve(target.base)
        if target.builder != target.base:
            self.bases.resolve(target.builder)
        build_args = {
            layout.build_args.revision: sha + ("-dirty" if dirty else ""),
            layout.build_args.created: utc_timestamp(),
            layout.build_args.base_digest: base.digest,
            layout.build_args.base_provenance: base.provenance,
        }
        labels = [target.label]
        if primary and target.flavor is not None:
            labels.append(target.variant)  # the flavor people deploy is also `<service>:prod`
        tags = naming.build_tags(service.name, labels, sha)
        title = f"{service.name} {target.label}"
        image_id = self.build_image(title, context, build_args,
                                    secrets={layout.context.build_ca_secret: build_trust_bundle()})
        self._refuse_secrets(title, image_id, target)
        self._refuse_unstartable(service, target, title, image_id)
        return self._finish(service, target, title, image_id, tags, base, started)

    def _context(self, service: ServiceSpec, target: Target) -> io.BytesIO:
        """The target's build context, its secrets scan passed: BuildKit builds the committed
        render; the legacy builder the same template's legacy form, with the CA in its context."""
        renderer, layout = self.project.renderer, self.project.layout
        dockerfile = renderer.dockerfile(service, target, buildkit=self.buildkit)
        # imagewright's run-time files, and the requirements it derives from a pyproject.toml/lock.
        extra = {**runtime_files(self.project), **dependency_files(service, self.project)}
        if not self.buildkit:
            extra[layout.context.build_ca] = build_trust_bundle()
        service_dir = layout.context.service_dir(service.name)
        context = build_context(service, renderer.dockerignore(), dockerfile, extra,
                                service_dir=service_dir)
        # Before anything is resolved, built or sent: a refused context leaves no trace.
        for note in check_context(service, context, service_dir).notes():
            self.say(note)
        return context

    def build_stage(self, service: ServiceSpec, target: Target, stage: str) -> str:
        """One stage of a target, built on BuildKit and left untagged: its image id (to look
        inside a builder stage, which a target's own image does not carry)."""
        context = self._context(service, target)
        self.bases.resolve(target.builder)
        return self.build_image(f"{service.name} {target.label} stage {stage}", context, {},
                                secrets={self.project.layout.context.build_ca_secret:
                                         build_trust_bundle()}, stage=stage)

    def build_debug_twin(self, service: ServiceSpec, prod: BuildResult) -> BuildResult:
        """`<service>:prod-<flavor>-debug`: the prod image just built, plus busybox under /busybox.

        Built FROM the prod image's id, not its tag, so the twin has exactly the prod layers."""
        target = prod.target
        if target.debug_twin is None:
            raise UserError(f"{service.name}: prod flavor '{target.flavor}' has a shell already and "
                            "no debug twin")
        started = time.monotonic()
        self.bases.resolve(target.debug_twin.tools_from)
        dockerfile = self.project.renderer.debug_twin_dockerfile(service, target)
        sha, _ = self.project.revision()
        tags = naming.build_tags(service.name, [target.debug_label], sha)
        title = f"{service.name} {target.debug_label}"
        # FROM an image id: BuildKit here would look the id up in a registry, so the twin (one
        # small layer) is always the legacy builder's.
        image_id = self.build_image(title, dockerfile_only(dockerfile),
                                    {self.project.layout.build_args.prod_image: prod.image_id},
                                    legacy=True)
        return self._finish(service, target, title, image_id, tags, prod.base, started)

    def _finish(self, service: ServiceSpec, target: Target, title: str, image_id: str,
                tags: tuple[str, ...], base: ResolvedBase, started: float) -> BuildResult:
        """Tag a built image (only now: a failed build leaves no tag) and report it."""
        self.tag(image_id, tags)
        size = int(self.engine.inspect_image(image_id)["Size"])
        seconds = time.monotonic() - started
        self.progress.done(f"{title} → {', '.join(tags)} ({size / 1e6:.0f} MB)", seconds)
        return BuildResult(service.name, target, image_id, tags, seconds, size, base)

    def python_parity(self, services: Iterable[ServiceSpec]) -> list[PythonParity]:
        """For each service with both `dev` and `prod` built here: which Pythons they run."""
        found: list[PythonParity] = []
        for service in services:
            refs = [naming.image_ref(service.name, variant) for variant in ("dev", "prod")]
            if all(self.engine.image(ref) is not None for ref in refs):
                dev, prod = (python_version(self.engine, ref, self.project.layout.image)
                             for ref in refs)
                found.append(PythonParity(service.name, dev, prod))
        return found

    def tag(self, image_id: str, tags: Iterable[str]) -> None:
        self.engine.tag(image_id, tags)

    def _refuse_secrets(self, title: str, image_id: str, target: Target) -> None:
        """A prod image with a credential in its config is never tagged."""
        findings = [f for f in config_findings(self.engine, image_id)
                    if f.id != "IW-CFG-004" or target.variant == "prod"]
        if not findings:
            return
        self.engine.remove_image(image_id)
        listed = "; ".join(f"{f.id} {f.where}: {f.detail}" for f in findings)
        raise BuildFailedError(f"build of {title} refused: {listed}. Pass credentials at run time "
                               "(docker run -e) or as build secrets")

    def _refuse_unstartable(self, service: ServiceSpec, target: Target, title: str,
                            image_id: str) -> None:
        """An image whose command is not in it is never tagged: read from the image itself (the
        venv first on its PATH), not guessed from the requirements."""
        variant = target.variant
        command = service.command_for(variant)
        config = self.engine.inspect_image(image_id).get("Config") or {}
        env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
        search = env.get("PATH", "").split(":")
        executable = find_executable(self.engine, image_id, command[0], search)
        remedy = (f"add the package that provides it to {service.dependencies.declared_in} or to "
                  f"{variant}.pip_packages in {service.spec_file}")
        if executable is None:
            self.engine.remove_image(image_id)
            where = command[0] if "/" in command[0] else ", ".join(f for f in search if f)
            raise CommandNotInImageError(
                f"build of {title} refused: its command {command[0]!r} ({variant}.command) is not "
                f"in the image (looked in {where}): {remedy}")
        module = _module_argument(command)
        if module is None:
            return
        code, output = run_to_completion(self.engine, image_id, [executable, "-c", _FIND_MODULE,
                                                                 module])
        if code != 0:
            self.engine.remove_image(image_id)
            why = ("is not installed" if code == 3
                   else f"could not be looked up ({' '.join(output.split())[-200:]})")
            raise CommandNotInImageError(
                f"build of {title} refused: module {module!r} of its command "
                f"({variant}.command: {command[0]} -m {module}) {why}: {remedy}")

    def build_recipe(self, ref: str, dockerfile: str, labels: dict[str, str]) -> str:
        """Build a base image from a rendered recipe (no service context) and tag it `ref`."""
        image_id = self.build_image(f"base {ref}", dockerfile_only(dockerfile), {}, labels)
        self.tag(image_id, [ref])
        return image_id

    def build_image(self, title: str, context: io.BytesIO, build_args: dict[str, str],
                    labels: dict[str, str] | None = None, *, secrets: dict[str, bytes] | None = None,
                    legacy: bool = False, stage: str | None = None) -> str:
        """Build a context tar (BuildKit where it works, else the legacy builder, which gets no
        `secrets`); the log streams to `progress`; a failure names its step."""
        if not legacy:
            self._announce()
        if self.buildkit and not legacy:
            return self._buildkit_image(title, context, build_args, labels or {}, secrets or {},
                                        stage)
        if stage is not None:
            raise BuildFailedError(f"build of {title}: building one stage needs BuildKit")
        self.progress.start(title)
        log: list[str] = []
        step = ""
        try:
            stream = self.engine.legacy_build(context, build_args, labels, nocache=self.nocache)
            image_id = ""
            for chunk in stream:
                if "error" in chunk:
                    raise BuildFailedError(_failure(title, step, log, str(chunk["error"])))
                text = str(chunk.get("stream", ""))
                for line in text.splitlines():
                    if not line.strip():
                        continue
                    log.append(line)
                    if match := _STEP.match(line):
                        step = line
                        self.progress.step(int(match[1]), int(match[2]), match[3])
                    else:
                        self.progress.line(line)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = str(aux["ID"])
        except EngineError as error:
            raise BuildFailedError(_failure(title, step, log, error.message)) from None
        if not image_id:
            raise BuildFailedError(_failure(title, step, log, "the engine reported no image id"))
        return image_id


    def _buildkit_image(self, title: str, context: io.BytesIO, build_args: dict[str, str],
                        labels: dict[str, str], secrets: dict[str, bytes], stage: str | None) -> str:
        buildx = self.choice.buildx
        assert buildx is not None
        self.progress.start(title)
        reader = BuildkitLog(self.progress)
        log: list[str] = []
        failed_step = ""
        build = BuildkitBuild(buildx, BuildkitRequest(context, build_args, labels, secrets,
                                                      nocache=self.nocache, stage=stage))
        try:
            for line in build.lines():
                log.append(line)
                reader.feed(line)
                if " ERROR" in line or line.split(" ", 1)[-1].startswith("ERROR"):
                    failed_step = reader.step_of(line) or failed_step
        except EngineError as error:
            raise BuildFailedError(_failure(title, failed_step or reader.last_step, log,
                                            error.message)) from None
        if not build.image_id:
            raise BuildFailedError(_failure(title, reader.last_step, log,
                                            "BuildKit reported no image id"))
        return build.image_id


def _module_argument(command: tuple[str, ...]) -> str | None:
    """`python -m gunicorn …` → "gunicorn"; None when the command runs no module."""
    if not command[0].rsplit("/", 1)[-1].startswith("python"):
        return None
    for index, argument in enumerate(command[1:-1], start=1):
        if argument == "-m":
            return command[index + 1]
        if not argument.startswith("-"):
            return None  # a script: what follows are its own arguments
    return None


# pip's own words for a download whose hash is not the one pinned (hash-checking mode).
_HASH_MISMATCH = "DO NOT MATCH THE HASHES"


def _failure(title: str, step: str, log: list[str], error: str) -> str:
    tail = "\n".join(f"    {line}" for line in log[-15:])
    hint = ""
    if any(_HASH_MISMATCH in line for line in log):
        hint = ("\n  a downloaded package does not match the hash its lock records: the lock was "
                "edited, or the index served other bytes; re-lock from a trusted index (uv lock, "
                "poetry lock) and review the diff")
    return (f"build of {title} failed at {step or 'the start'}: {error.strip()}{hint}\n"
            f"  log tail:\n{tail}")
