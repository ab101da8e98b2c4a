"""Build images through the Docker SDK: context, streamed log, tags only after success."""

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
from builder.engine.client import Engine, EngineError
from builder.inspect.config import config_findings
from builder.inspect.surface import python_version
from builder.project import Project
from builder.render.dockerfiles import rendered_files
from builder.spec.catalog import Target
from builder.spec.parity import same_python
from builder.spec.service import ServiceSpec

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")


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


class ImageBuilder:
    def __init__(self, engine: Engine, project: Project, progress: BuildProgress,
                 say: Callable[[str], None], *, nocache: bool = False) -> None:
        self.engine = engine
        self.nocache = nocache  # a cold build, as the benchmark times it
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
            target = catalog.flavors[requested]
            if missing := self._missing_base(target):
                raise BaseMissingError(f"FLAVOR={requested}: base image {missing.ref} is not "
                                       f"available on this machine: {missing.how}")
            return FlavorChoice((target,), ())
        chosen: list[Target] = []
        skipped: list[tuple[str, str]] = []
        for name in service.prod.flavors:
            target = catalog.flavors[name]
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

    def build_target(self, service: ServiceSpec, target: Target, *, primary: bool) -> BuildResult:
        """Build one target; `primary` also gives it the plain `<service>:<variant>` tags."""
        started = time.monotonic()
        files = {f.path.name: f.text for f in rendered_files(self.project.renderer, service,
                                                                 self.project.build_dir)}
        sha, dirty = self.project.revision()
        layout = self.project.layout
        context = build_context(
            service, files[naming.DOCKERIGNORE], files[naming.dockerfile_name(target.label)],
            {layout.context.build_ca: build_trust_bundle(), **runtime_files(self.project),
             **dependency_files(service, self.project)},
        )
        # Before anything is resolved, built or sent: a refused context leaves no trace.
        for note in check_context(service, context).notes():
            self.say(note)
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
        image_id = self.build_image(title, context, build_args)
        self._refuse_secrets(title, image_id, target)
        return self._finish(service, target, title, image_id, tags, base, started)

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
        image_id = self.build_image(title, dockerfile_only(dockerfile),
                                    {self.project.layout.build_args.prod_image: prod.image_id})
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

    def build_recipe(self, ref: str, dockerfile: str, labels: dict[str, str]) -> str:
        """Build a base image from a rendered recipe (no service context) and tag it `ref`."""
        image_id = self.build_image(f"base {ref}", dockerfile_only(dockerfile), {}, labels)
        self.tag(image_id, [ref])
        return image_id

    def build_image(self, title: str, context: io.BytesIO, build_args: dict[str, str],
                    labels: dict[str, str] | None = None) -> str:
        """Build a context tar; the log streams to `progress`; a failure names its step."""
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
