"""`compare`: a service's images side by side, measured.

Columns: dev, every prod flavor built here (`<service>:prod-<flavor>`), a naive baseline — the
tutorial-style single-stage image of the same app (templates/naive.Dockerfile.j2) — and, when the
service folder has a Dockerfile of its own, "yours": the image the team builds today. Both
baselines are built in the same run, so every ratio comes from images measured side by side on
one machine.

Nothing here prints: progress goes through `CompareProgress`; the result is a frozen `Comparison`
that compare_table turns into rows and compare_report/compare_html into files.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from builder import naming
from builder.build.context import build_context, build_trust_bundle, dependency_files
from builder.build.images import BuildFailedError, ImageBuilder
from builder.build.secrets import check_context
from builder.compare.own_dockerfile import UnreadableDockerfileError, base_refs
from builder.core.clock import utc_timestamp
from builder.core.errors import FaultError, UserError
from builder.engine.client import Engine
from builder.engine.containers import run_to_completion
from builder.engine.filesystem import read_file
from builder.inspect import checks
from builder.inspect.checks import CheckResult
from builder.inspect.layers import LayerReport, analyse_layers
from builder.inspect.surface import AttackSurface, attack_surface, python_version
from builder.naming import BASE_NAME_LABEL, SERVICE_LABEL, VARIANT_LABEL
from builder.project import Project
from builder.scan import trivy
from builder.spec.layout import ImagePaths
from builder.spec.parity import same_python
from builder.spec.service import SPEC_FILENAME, ServiceSpec
from builder.verify.ownership import OtelSetup
from builder.verify.startup import PILLAR_MODES, StartupStats, measure_startup

# Written by the venv stage (templates/_partials/macros.j2): exactly what pip installed.
# Trivy's package types: language packages by ecosystem, OS packages by distro family.
PYTHON_TYPES = ("python-pkg",)
OS_TYPES = ("alpine", "debian", "ubuntu")
# At most this many starts per partial pillar mode (traces only, traces + metrics).
PILLAR_RUNS = 3


# ---- what is measured -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str  # the table header: dev | prod-<flavor> | naive | yours
    variant: str  # dev | prod | naive | yours
    flavor: str  # "" unless prod
    image: str  # the tag measured
    image_id: str
    base: str  # the image it was built FROM ("" when its labels don't say)


@dataclass(frozen=True)
class Packages:
    os: int | None  # None: no SBOM
    python: int | None
    sbom: str  # where the counts come from
    python_version: str  # "" when it could not be read


@dataclass(frozen=True)
class FindingCount:
    total: int | None  # None: the scanner did not run for this image
    by_severity: tuple[tuple[str, int], ...] = ()  # most severe first
    not_run: str = ""


@dataclass(frozen=True)
class Security:
    scan_file: str  # the scan.json the counts come from, "" when none applies
    vulnerabilities: FindingCount
    secrets: FindingCount
    misconfigurations: FindingCount
    surface: AttackSurface


@dataclass(frozen=True)
class Measured:
    column: Column
    size_bytes: int  # `docker image inspect` Size: uncompressed, all layers
    layers: LayerReport
    packages: Packages
    security: Security
    startup_otel: StartupStats
    startup_plain: StartupStats
    # The surface against the catalog's promises for this variant/flavor; none for the baseline.
    promises: tuple[CheckResult, ...] = ()
    # Startup with only some pillars on (verify.startup.PILLAR_MODES), fewer runs each.
    startup_pillars: tuple[StartupStats, ...] = ()

    def median(self, phase: str, otel: bool = True) -> float | None:
        timing = (self.startup_otel if otel else self.startup_plain).timing(phase)
        return timing.median if timing else None

    def pillar_stats(self, mode: str) -> StartupStats | None:
        """The startup of one pillar mode: a PillarMode's name, "otel" (all on) or "plain"."""
        if mode == self.startup_otel.mode:
            return self.startup_otel
        if mode == self.startup_plain.mode:
            return self.startup_plain
        return next((stats for stats in self.startup_pillars if stats.mode == mode), None)

    @property
    def otel_setup(self) -> OtelSetup | None:
        return self.startup_otel.otel_setup

    @property
    def package_count(self) -> int | None:
        if self.packages.os is None or self.packages.python is None:
            return None
        return self.packages.os + self.packages.python


@dataclass(frozen=True)
class Parity:
    """prod against dev: every Python package prod has, dev has at the same version; same Python."""

    column: str
    dev_python: str
    prod_python: str
    packages: int  # how many packages prod's lock lists
    missing_in_dev: tuple[str, ...]  # name==version
    different: tuple[tuple[str, str, str], ...]  # (name, prod version, dev version)
    problem: str = ""  # why it could not be checked

    @property
    def python_matches(self) -> bool:
        return same_python(self.dev_python, self.prod_python)

    @property
    def ok(self) -> bool:
        return (not self.problem and self.python_matches and not self.missing_in_dev
                and not self.different)


@dataclass(frozen=True)
class Ratio:
    metric: str
    numerator: str  # column names
    denominator: str
    value: float | None


@dataclass(frozen=True)
class Machine:
    cpu: str
    cpus: int
    memory_bytes: int
    os: str
    kernel: str
    engine: str
    storage_driver: str

    def describe(self) -> str:
        return (f"{self.cpus} x {self.cpu}, {self.memory_bytes / 2**30:.0f} GiB RAM, {self.os}, "
                f"kernel {self.kernel}, Docker Engine {self.engine} ({self.storage_driver})")


@dataclass(frozen=True)
class NotMeasured:
    """A baseline column that could not be built or run here, and why (shown as its column)."""

    name: str
    image: str
    reason: str


@dataclass(frozen=True)
class Comparison:
    service: str
    created: str  # ISO 8601, UTC
    machine: Machine
    runs: int
    columns: tuple[Measured, ...]
    parity: tuple[Parity, ...]
    ratios: tuple[Ratio, ...]
    skipped: tuple[tuple[str, str], ...]  # prod flavors not built here, and why
    naive_seconds: float  # building the baseline (mostly cache hits after the first run)
    unmeasured: tuple[NotMeasured, ...] = ()  # "yours" when its build cannot run here

    def column(self, name: str) -> Measured:
        return next(m for m in self.columns if m.column.name == name)

    @property
    def column_names(self) -> list[str]:
        """Every column of the table: the measured images, then those that could not be."""
        return [m.column.name for m in self.columns] + [n.name for n in self.unmeasured]


class CompareProgress(Protocol):
    def begin(self, title: str, total: int) -> None: ...
    def doing(self, description: str) -> None: ...
    def advance(self) -> None: ...


# ---- which images ---------------------------------------------------------------------------------

def find_columns(engine: Engine, service: ServiceSpec
                 ) -> tuple[list[Column], list[tuple[str, str]]]:
    """dev and every prod flavor built here; the flavors that are not, with the reason."""
    dev_ref = naming.image_ref(service.name, "dev")
    dev = _labelled(engine, dev_ref, service.name, "dev")
    if dev is None:
        raise FaultError(f"image {dev_ref} does not exist: run `make build-dev` first")
    columns = [Column("dev", "dev", "", dev_ref, dev.id, _base_of(dev))]
    skipped: list[tuple[str, str]] = []
    for flavor in service.prod.flavors:
        label = naming.target_label("prod", flavor)
        ref = naming.image_ref(service.name, label)
        image = _labelled(engine, ref, service.name, "prod")
        if image is None:
            skipped.append((flavor, f"no image {ref} on this machine "
                                    f"(`make build-prod FLAVOR={flavor}` builds it if its base is here)"))
        else:
            columns.append(Column(label, "prod", flavor, ref, image.id, _base_of(image)))
    if len(columns) == 1:
        raise FaultError(f"no prod image of {service.name} is built: run `make build-prod` first")
    return columns, skipped


def _base_of(image: Any) -> str:
    return str((image.labels or {}).get(BASE_NAME_LABEL, ""))


def _labelled(engine: Engine, ref: str, service: str, variant: str
              ) -> Any | None:
    image = engine.image(ref)
    if image is None:
        return None
    labels = image.labels or {}
    if labels.get(SERVICE_LABEL) != service or labels.get(VARIANT_LABEL) != variant:
        raise UserError(f"image {ref} is labelled {SERVICE_LABEL}={labels.get(SERVICE_LABEL)!r}, "
                        f"{VARIANT_LABEL}={labels.get(VARIANT_LABEL)!r}: not an imagewright "
                        f"{variant} image of {service}; rebuild it")
    return image


# ---- the naive baseline ---------------------------------------------------------------------------

def build_naive(builder: ImageBuilder, project: Project, service: ServiceSpec) -> Column:
    """Build `<service>:naive`: no .dockerignore, the build CA handed over like the venv stage's."""
    base = project.catalog.targets(service)[0].base
    builder.bases.resolve(base)
    context = build_context(service, "", project.renderer.naive_dockerfile(service),
                            {project.layout.context.build_ca: build_trust_bundle(),
                             **dependency_files(service, project)})
    # Naive about size and layers, never about secrets: the whole folder is sent, so it is scanned.
    for note in check_context(service, context).notes():
        builder.say(note)
    ref = naming.image_ref(service.name, naming.NAIVE)
    image_id = builder.build_image(f"{service.name} {naming.NAIVE}", context, {})
    builder.tag(image_id, [ref])
    return Column(naming.NAIVE, naming.NAIVE, "", ref, image_id, base)


# ---- your image today: the service's own Dockerfile ---------------------------------------------

def build_yours(builder: ImageBuilder, project: Project, service: ServiceSpec
                ) -> Column | NotMeasured | None:
    """Build `<service>:yours` from the service folder's own Dockerfile, as `docker build .` there
    would (its own .dockerignore applies); None when the folder has no Dockerfile. When an image it
    is built FROM is not available here, or the build fails, the column says why instead."""
    path = service.directory / naming.OWN_DOCKERFILE
    if not path.is_file():
        return None
    ref = naming.image_ref(service.name, naming.YOURS)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        bases = base_refs(text)
    except UnreadableDockerfileError as error:
        return NotMeasured(naming.YOURS, ref, f"{project.display(path)}: {error}")
    for base in bases:
        availability = builder.bases.availability(base)
        if not availability.available:
            return NotMeasured(naming.YOURS, ref, f"its FROM {base} is not available on this "
                                                  f"machine: {availability.how}")
        builder.bases.resolve(base)  # a catalog base with a recipe is bootstrapped, as for ours
    ignore = service.directory / naming.DOCKERIGNORE
    rules = ignore.read_text(encoding="utf-8", errors="replace") if ignore.is_file() else ""
    # The spec is imagewright's, not part of the image the team builds today.
    context = build_context(service, f"{rules}\n{SPEC_FILENAME}\n", text,
                            {project.layout.context.build_ca: build_trust_bundle()})
    for note in check_context(service, context).notes():
        builder.say(note)
    try:
        # PIP_CERT for a Dockerfile that declares `ARG PIP_CERT` (a TLS-intercepting proxy): the
        # build machine's CA, relative to where `COPY . .` puts the context.
        image_id = builder.build_image(
            f"{service.name} {naming.YOURS}", context,
            {"PIP_CERT": project.layout.context.build_ca},
            {SERVICE_LABEL: service.name, VARIANT_LABEL: naming.YOURS})
    except BuildFailedError as error:
        return NotMeasured(naming.YOURS, ref, f"its build failed: {error.message.splitlines()[0]}")
    builder.tag(image_id, [ref])
    return Column(naming.YOURS, naming.YOURS, "", ref, image_id, bases[-1] if bases else "")


# ---- measuring one image --------------------------------------------------------------------------

def measure(engine: Engine, project: Project, service: ServiceSpec, column: Column,
            runs: int, progress: CompareProgress) -> Measured:
    title = f"{service.name} {column.name}"
    progress.doing(f"{title}: layers (docker save, gzip)")
    layers = analyse_layers(engine, column.image, column.base)
    progress.advance()
    progress.doing(f"{title}: attack surface")
    surface = attack_surface(engine, column.image, project.layout.image)
    attrs = engine.inspect_image(column.image)
    promises = _promises_kept(project, service, column, surface, attrs["Config"] or {})
    progress.advance()
    progress.doing(f"{title}: packages (SBOM) and scan results")
    scan_file, scanned = _scan_document(project, service, column)
    packages = _packages(engine, project, column, scan_file, scanned)
    progress.advance()
    # Ours run the spec's command; the team's own image runs as it is (OTel is whatever it does).
    yours = column.variant == naming.YOURS
    options: dict[str, Any] = ({"own_command": False, "span_timeout": 5, "otel_mode": "app"}
                               if yours else {"otel_mode": "auto"} if column.variant == naming.NAIVE
                               else {})
    progress.doing(f"{title}: startup with OpenTelemetry, {runs} run(s)")
    otel = measure_startup(engine, service, column.variant, column.image, runs, True,
                           lambda _: progress.advance(), **options)
    pillars = []
    # The team's own image exports what it exports: its pillars are not imagewright's switches.
    for mode in () if yours else PILLAR_MODES:
        progress.doing(f"{title}: startup with {mode.label}, {pillar_runs(runs)} run(s)")
        pillars.append(measure_startup(engine, service, column.variant, column.image,
                                       pillar_runs(runs), True, lambda _: progress.advance(),
                                       mode=mode, **options))
    progress.doing(f"{title}: startup without OpenTelemetry, {runs} run(s)")
    plain = measure_startup(engine, service, column.variant, column.image, runs, False,
                            lambda _: progress.advance(), **options)
    size = int(attrs["Size"])
    security = Security(project.display(scan_file) if scan_file else "",
                        *_finding_counts(project, service, column, scan_file, scanned), surface)
    return Measured(column, size, layers, packages, security, otel, plain, promises,
                    tuple(pillars))


def _promises_kept(project: Project, service: ServiceSpec, column: Column, surface: AttackSurface,
                   config: checks.ImageConfig) -> tuple[CheckResult, ...]:
    """dev's and each prod flavor's registered checks; the naive baseline promises nothing."""
    if column.variant not in ("dev", "prod"):
        return ()
    target = project.catalog.target(service, column.variant, column.flavor or None)
    return tuple(checks.evaluate(target.promises, surface, config))


def _scan_document(project: Project, service: ServiceSpec, column: Column
                   ) -> tuple[Path | None, dict[str, Any] | None]:
    """The scanner's scan.json for exactly this image, if `scan` ran since it was built."""
    folders = {"dev": ["dev"], "prod": [naming.target_label("prod", column.flavor), "prod"]
               }.get(column.variant, [])
    stale: Path | None = None
    for folder in folders:
        path = naming.report_dir(project.reports_dir, service.name, folder) / "scan.json"
        if not path.is_file():
            continue
        try:
            document = json.loads(path.read_text())
        except ValueError:
            continue
        if ((document.get("image") or {}).get("id") or "") == column.image_id:
            return path, document
        stale = stale or path
    return stale, None


def _finding_counts(project: Project, service: ServiceSpec, column: Column, path: Path | None,
                    document: dict[str, Any] | None
                    ) -> tuple[FindingCount, FindingCount, FindingCount]:
    if document is None:
        if column.variant in (naming.NAIVE, naming.YOURS):
            why = "not run (`scan` covers dev and prod only)"
        elif path is not None:
            why = (f"not run for this image ({project.display(path)} is from an earlier build: "
                   "run `make scan`)")
        else:
            why = f"not run (`make scan SERVICE={service.name}` writes scan.json)"
        missing = FindingCount(None, (), why)
        return missing, missing, missing
    return (_count(document.get("vulnerabilities"), "total"), _count(document.get("secrets")),
            _count(document.get("misconfigurations")))


def _count(section: dict[str, Any] | None, key: str = "count") -> FindingCount:
    section = section or {}
    if section.get("status") != "ok":
        return FindingCount(None, (), f"not run ({section.get('reason') or 'no result'})")
    by_severity = section.get("by_severity") or {}
    return FindingCount(int(section.get(key) or 0),
                        tuple((str(name), int(count)) for name, count in by_severity.items()))


def _packages(engine: Engine, project: Project, column: Column,
              scan_file: Path | None, scanned: dict[str, Any] | None) -> Packages:
    version = _python_version(engine, column.image, project.layout.image)
    sbom_file = scan_file.parent / "sbom.cdx.json" if scan_file and scanned else None
    if sbom_file is not None and sbom_file.is_file():
        summary, source = trivy.sbom_summary(sbom_file.read_bytes()), project.display(sbom_file)
    else:
        summary, source = sbom(column.image, project), "Trivy SBOM made by compare"
    counts = dict(summary.by_type)
    return Packages(sum(counts.get(kind, 0) for kind in OS_TYPES),
                    sum(counts.get(kind, 0) for kind in PYTHON_TYPES), source, version)


def sbom(image: str, project: Project) -> trivy.Sbom:
    """A CycloneDX SBOM of `image` through the scanner's own Trivy invocation (secrets + packages).

    The DB is declared missing on purpose: vulnerabilities are the scanner's job and come from its
    scan.json, with its allow-list applied.
    """
    cache_dir = trivy.cache_dir_for(project.cache_dir, None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    no_db = trivy.DbStatus("missing", cache_dir, "compare reads vulnerabilities from scan.json")
    with tempfile.TemporaryDirectory(prefix="imagewright-compare-") as temp:
        report = trivy.scan_image(image, cache_dir, no_db, Path(temp))
        return trivy.sbom_summary(trivy.convert(report.raw, "cyclonedx", None))


def _python_version(engine: Engine, image: str, paths: ImagePaths) -> str:
    """From the venv's pyvenv.cfg; the naive image has no venv, so ask its python3."""
    version = python_version(engine, image, paths)
    if version:
        return version
    code, output = run_to_completion(engine, image, [
        "python3", "-c", "import platform; print(platform.python_version())"])
    lines = output.strip().splitlines()
    return lines[-1].strip() if code == 0 and lines else ""


# ---- parity and ratios (pure) ---------------------------------------------------------------------

def parse_lock(text: str) -> dict[str, str]:
    """`pip freeze` output → {normalised name: version (or the direct reference)}."""
    packages: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        for separator in ("==", " @ "):
            if separator in line:
                name, version = line.split(separator, 1)
                packages[_normalise(name)] = version.strip()
                break
    return packages


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def check_parity(column: str, dev_lock: dict[str, str] | None, prod_lock: dict[str, str] | None,
                 dev_python: str, prod_python: str, *, lock_file: str) -> Parity:
    if dev_lock is None or prod_lock is None:
        which = "dev" if dev_lock is None else column
        return Parity(column, dev_python, prod_python, 0, (), (),
                      f"{which} has no {lock_file}: cannot compare packages")
    missing = tuple(f"{name}=={version}" for name, version in sorted(prod_lock.items())
                    if name not in dev_lock)
    different = tuple((name, version, dev_lock[name]) for name, version in sorted(prod_lock.items())
                      if name in dev_lock and dev_lock[name] != version)
    return Parity(column, dev_python, prod_python, len(prod_lock), missing, different)


def _lock(engine: Engine, image: str, lock_file: str) -> dict[str, str] | None:
    data = read_file(engine, image, lock_file)
    return parse_lock(data.decode("utf-8", "replace")) if data is not None else None


RatioMetric = tuple[str, Callable[[Measured], float | None]]
RATIO_METRICS: tuple[RatioMetric, ...] = (
    ("size, uncompressed", lambda m: m.size_bytes),
    ("size, compressed (as pushed)", lambda m: m.layers.compressed_bytes),
    ("startup to healthy, OTel on (median)", lambda m: m.median("healthy_ms")),
    ("startup to first span (median)", lambda m: m.median("first_span_ms")),
    ("startup to healthy, OTel off (median)", lambda m: m.median("healthy_ms", otel=False)),
    ("packages, OS + Python", lambda m: m.package_count),
)


def ratios(columns: Sequence[Measured]) -> tuple[Ratio, ...]:
    """prod ÷ dev, prod ÷ naive and prod ÷ yours (the team's image today) for every prod column
    and metric."""
    found: list[Ratio] = []
    references = [m for m in columns if m.column.variant in ("dev", naming.NAIVE, naming.YOURS)]
    for prod in (m for m in columns if m.column.variant == "prod"):
        for reference in references:
            for metric, value in RATIO_METRICS:
                top, bottom = value(prod), value(reference)
                found.append(Ratio(metric, prod.column.name, reference.column.name,
                                   round(top / bottom, 3) if top is not None and bottom else None))
    return tuple(found)


# ---- the whole comparison -------------------------------------------------------------------------

def machine(engine: Engine) -> Machine:
    info = engine.info()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Machine(cpu, int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0),
                   str(info.get("OperatingSystem", "")), str(info.get("KernelVersion", "")),
                   str(info.get("ServerVersion", "")), str(info.get("Driver", "")))


def pillar_runs(runs: int) -> int:
    """Runs per partial pillar mode: each costs a container start, and two modes are added."""
    return min(runs, PILLAR_RUNS)


def steps_for(columns: int, runs: int) -> int:
    """Progress units of one service's comparison: the baseline builds, then each column's
    steps."""
    return 2 + columns * (3 + 2 * runs + len(PILLAR_MODES) * pillar_runs(runs)) + 1


def compare_service(engine: Engine, project: Project, builder: ImageBuilder,
                    service: ServiceSpec, runs: int, progress: CompareProgress) -> Comparison:
    if runs < 1:
        raise UserError("compare: --runs must be at least 1")
    columns, skipped = find_columns(engine, service)
    baselines = 1 + (service.directory / naming.OWN_DOCKERFILE).is_file()  # naive, yours
    progress.begin(f"compare {service.name}", steps_for(len(columns) + baselines, runs))
    progress.doing(f"{service.name}: build the naive baseline")
    started = time.monotonic()
    columns.append(build_naive(builder, project, service))
    naive_seconds = time.monotonic() - started
    progress.advance()
    progress.doing(f"{service.name}: build your own Dockerfile, if there is one")
    unmeasured: list[NotMeasured] = []
    yours = build_yours(builder, project, service)
    if isinstance(yours, Column):
        columns.append(yours)
    elif yours is not None:
        unmeasured.append(yours)
    progress.advance()
    measured = tuple(measure(engine, project, service, column, runs, progress) for column in columns)
    progress.doing(f"{service.name}: dev/prod parity")
    dev = measured[0]
    lock_file = project.layout.image.lock_file
    dev_lock = _lock(engine, dev.column.image, lock_file)
    parity = tuple(check_parity(m.column.name, dev_lock, _lock(engine, m.column.image, lock_file),
                                dev.packages.python_version, m.packages.python_version,
                                lock_file=lock_file)
                   for m in measured if m.column.variant == "prod")
    progress.advance()
    return Comparison(service.name, utc_timestamp(), machine(engine), runs, measured, parity,
                      ratios(measured), tuple(skipped), round(naive_seconds, 1), tuple(unmeasured))

