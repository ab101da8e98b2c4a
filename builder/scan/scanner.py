"""`scan`: every scanner on every built image and rendered Dockerfile of a service, then the gate.

A scan target is one rendered Dockerfile and, when it was built here, its image:
`reports/<service>/dev` (`<service>:dev`), `reports/<service>/prod` (`<service>:prod`, whichever
flavor it is), `reports/<service>/prod-<flavor>` (another flavor; Dockerfile-only when its image
could not be built on this machine, e.g. Alpine without a mirror). Trivy and hadolint details live
in trivy.py and hadolint.py, the gate in policy.py; report/scan.py writes the reports. A prod
image's attack surface is also measured and held to its flavor's promises (templates/catalog.yaml).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from builder import naming
from builder.core.clock import utc_timestamp
from builder.core.errors import UserError
from builder.engine.client import Engine
from builder.inspect.checks import CheckResult
from builder.inspect.promises import check_promises
from builder.naming import FLAVOR_LABEL, SERVICE_LABEL, VARIANT_LABEL
from builder.project import Project
from builder.scan import hadolint, policy, trivy
from builder.scan.hadolint import LintFinding
from builder.scan.policy import IGNORE_FILENAME, IgnoreEntry, Verdict
from builder.scan.trivy import DbStatus, Findings, Outcome, Sbom, Secret, Vulnerability
from builder.spec import reference
from builder.spec.service import VARIANTS, ServiceSpec


@dataclass(frozen=True)
class ScanTarget:
    service: str
    label: str  # the report folder: dev | prod | prod-<flavor>
    variant: str
    flavor: str  # "" for dev
    dockerfile: Path
    image: str  # "" when this Dockerfile has no image on this machine
    why_no_image: str = ""

    @property
    def title(self) -> str:
        return f"{self.service} {self.label}"


@dataclass(frozen=True)
class ScanOptions:
    cache_dir: Path
    reports_dir: Path
    today: date
    db_archive: Path | None = None
    db_repository: str | None = None
    ignorefile: Path | None = None  # replaces the repository's and the service's allow-lists


@dataclass(frozen=True)
class ScanResult:
    target: ScanTarget
    report_dir: Path
    dockerfile: str  # repository-relative
    image_id: str
    os: str
    db: DbStatus
    findings: Findings
    sbom: Sbom | None
    sbom_not_run: str
    hadolint: tuple[LintFinding, ...]
    unjustified_ignores: tuple[int, ...]
    allow_list_files: tuple[str, ...]
    verdict: Verdict
    trivy_version: str
    scanned_at: str
    seconds: float
    # The tools' own reports, by file name (trivy.json, trivy.sarif, sbom.cdx.json, …), as the
    # tools wrote them; report/scan.py writes them beside scan.json and summary.md.
    tool_outputs: Mapping[str, bytes]

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.tool_outputs, "scan.json", "summary.md")


@dataclass(frozen=True)
class ScanSession:
    """What every target of one scan shares: the vulnerability DB, the Trivy version, and the
    engine that measures prod images' attack surface for their promises."""

    options: ScanOptions
    db: DbStatus
    trivy_version: str
    engine: Engine


class ScanProgress(Protocol):
    def step(self, target: ScanTarget, what: str) -> None: ...


# ---- what to scan ---------------------------------------------------------------------------------

def plan(project: Project, engine: Engine, services: Sequence[ServiceSpec],
         variant: str | None) -> list[ScanTarget]:
    """Every rendered Dockerfile of `services` (of one variant, or both), with its image if built."""
    targets: list[ScanTarget] = []
    for service in services:
        if variant in (None, "dev"):
            ref = naming.image_ref(service.name, "dev")
            targets.append(_target(project, service.name, "dev", "", "dev", ref,
                                   engine.image(ref) is not None, "make build-dev"))
        if variant in (None, "prod"):
            targets.extend(_prod_targets(project, engine, service))
    if not any(target.image for target in targets):
        names = ", ".join(service.name for service in services)
        hint = f"make build-{variant}" if variant else "make build-dev / make build-prod"
        raise UserError(f"scan: no built image of {names} on this machine: run `{hint}` first")
    return targets


def _prod_targets(project: Project, engine: Engine, service: ServiceSpec
                  ) -> list[ScanTarget]:
    primary_ref = naming.image_ref(service.name, "prod")
    primary = engine.image(primary_ref)
    primary_flavor = primary.labels.get(FLAVOR_LABEL, "") if primary is not None else ""
    if primary is not None and primary_flavor not in service.prod.flavors:
        raise UserError(f"image {primary_ref} has flavor label {primary_flavor!r}, which is "
                        f"not one of {service.spec_file} prod.flavors: rebuild it")
    targets = []
    for flavor in service.prod.flavors:
        label = naming.target_label("prod", flavor)
        ref = naming.image_ref(service.name, label)
        if flavor == primary_flavor:
            targets.append(_target(project, service.name, "prod", flavor, "prod",
                                   primary_ref, True, ""))
            continue
        image = engine.image(ref)
        if image is not None and primary is not None and image.id == primary.id:
            continue
        targets.append(_target(project, service.name, "prod", flavor, label, ref,
                               image is not None, f"make build-prod FLAVOR={flavor}"))
    # The image people deploy (`<service>:prod`) first; stable order for the other flavors.
    return sorted(targets, key=lambda target: target.label != "prod")


def _target(project: Project, service: str, variant: str, flavor: str, label: str, ref: str,
            built: bool, how: str) -> ScanTarget:
    dockerfile = _dockerfile(project, service, variant, flavor)
    if not built:
        return ScanTarget(service, label, variant, flavor, dockerfile, "",
                          f"image {ref} is not built on this machine ({how})")
    return ScanTarget(service, label, variant, flavor, dockerfile, ref)


def plan_image(project: Project, engine: Engine, ref: str, service_name: str | None,
               variant_name: str | None = None) -> ScanTarget:
    """An explicit image. What the command line names wins; the image's labels fill in what it
    doesn't. A label that disagrees with the command line, names no service of this project, or is
    not a name at all is refused: a label alone never decides where reports are written."""
    if not reference.IMAGE_REFERENCE.fullmatch(ref):
        raise UserError(f"--image {ref!r} is not an image reference (name[:tag][@sha256:digest])")
    image = engine.image(ref)
    if image is None:
        raise UserError(f"--image {ref}: no such image on this machine")
    labels = image.labels
    service_name = _agreed(ref, SERVICE_LABEL, labels.get(SERVICE_LABEL), service_name)
    if not service_name:
        raise UserError(f"--image {ref}: no {SERVICE_LABEL} label; name the service")
    service = project.service(service_name)
    variant = _agreed(ref, VARIANT_LABEL, labels.get(VARIANT_LABEL), variant_name)
    if variant not in VARIANTS:
        raise UserError(f"--image {ref}: label {VARIANT_LABEL}={variant!r} is not one of "
                        f"{', '.join(VARIANTS)}; pass --variant")
    flavor = labels.get(FLAVOR_LABEL, "") if variant == "prod" else ""
    if variant == "prod" and flavor not in service.prod.flavors:
        raise UserError(f"--image {ref}: label {FLAVOR_LABEL}={flavor!r} is not one of "
                        f"{service.name}'s prod flavors ({', '.join(service.prod.flavors)})")
    return ScanTarget(service.name, variant, variant, flavor,
                      _dockerfile(project, service.name, variant, flavor), ref)


def _agreed(ref: str, key: str, label: str | None, explicit: str | None) -> str | None:
    """The command line's value, else the label's; both given and different is an error."""
    if explicit and label and label != explicit:
        raise UserError(f"--image {ref}: labelled {key}={label!r}, but the command line says "
                        f"{explicit!r}: scan it as what it is, or rebuild it")
    return explicit or label


def _dockerfile(project: Project, service: str, variant: str, flavor: str) -> Path:
    path = naming.dockerfile_path(project.build_dir, service, naming.target_label(variant, flavor))
    if not path.is_file():
        raise UserError(f"{path.relative_to(project.root)} does not exist: run `make render`")
    return path


# ---- the allow-list -------------------------------------------------------------------------------

def allow_list(project: Project, service: str, explicit: Path | None
               ) -> tuple[tuple[IgnoreEntry, ...], tuple[str, ...]]:
    """Entries from --ignorefile, or from `.trivyignore.yaml` at the root and in the service."""
    if explicit is not None:
        if not explicit.is_file():
            raise UserError(f"--ignorefile {explicit}: no such file")
        files = [explicit]
    else:
        files = [path for path in (project.root / IGNORE_FILENAME,
                                   project.images_dir / service / IGNORE_FILENAME)
                 if path.is_file()]
    entries: list[IgnoreEntry] = []
    shown: list[str] = []
    for path in files:
        display = project.display(path)
        entries.extend(policy.load_ignores(path, display))
        shown.append(display)
    return tuple(entries), tuple(shown)


# ---- running --------------------------------------------------------------------------------------

def start_session(options: ScanOptions, engine: Engine) -> ScanSession:
    """Make the vulnerability DB ready (or say why it is not) once for every target."""
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    db = trivy.prepare_db(options.cache_dir, options.db_archive, options.db_repository)
    return ScanSession(options, db, trivy.version(), engine)


def scan_targets(project: Project, targets: Sequence[ScanTarget], session: ScanSession,
                 progress: ScanProgress) -> Iterator[ScanResult]:
    """Each target's result as soon as it is scanned, so a caller can write it at once."""
    for target in targets:
        yield scan_target(project, target, session, progress)


def scan_target(project: Project, target: ScanTarget, session: ScanSession,
                progress: ScanProgress) -> ScanResult:
    options, db, trivy_version = session.options, session.db, session.trivy_version
    started = time.monotonic()
    scanned_at = utc_timestamp()
    service = project.service(target.service)
    entries, allow_files = allow_list(project, target.service, options.ignorefile)
    dockerfile = project.display(target.dockerfile)
    report_dir = naming.report_dir(options.reports_dir, target.service, target.label)
    with tempfile.TemporaryDirectory(prefix="imagewright-scan-") as temp:
        workdir = Path(temp)
        outputs: dict[str, bytes] = {}
        sarif_logs: list[bytes] = []
        ignorefile = workdir / IGNORE_FILENAME
        # Trivy gets only the entries the gate honours, so its reports agree with the verdict.
        ignorefile.write_text(policy.dump_ignores(policy.honoured(entries, options.today)))

        if target.image:
            progress.step(target, "trivy image: vulnerabilities, secrets, packages")
            image = trivy.scan_image(target.image, options.cache_dir, db, workdir)
            vulnerabilities, secrets = image.vulnerabilities, image.secrets
            outputs["trivy.json"] = trivy.convert(image.raw, "json", ignorefile,
                                                  show_suppressed=True)
            outputs["sbom.cdx.json"] = trivy.convert(image.raw, "cyclonedx", None)
            sarif_logs.append(trivy.convert(image.raw, "sarif", ignorefile))
            sbom, sbom_not_run = trivy.sbom_summary(outputs["sbom.cdx.json"]), ""
            image_id, os_name = image.image_id, image.os
        else:
            vulnerabilities = Outcome[Vulnerability](not_run=target.why_no_image)
            secrets = Outcome[Secret](not_run=target.why_no_image)
            sbom, sbom_not_run, image_id, os_name = None, target.why_no_image, "", ""

        progress.step(target, f"trivy config {dockerfile}")
        config_raw, misconfigurations = trivy.scan_dockerfile(target.dockerfile, dockerfile,
                                                              options.cache_dir, workdir)
        outputs["trivy-config.json"] = trivy.convert(config_raw, "json", ignorefile,
                                                     show_suppressed=True)
        sarif_logs.append(trivy.convert(config_raw, "sarif", ignorefile))
        outputs["trivy.sarif"] = _json(trivy.merge_sarif(
            sarif_logs, dockerfile, f"imagewright/{target.service}/{target.label}/"))

    progress.step(target, f"hadolint {dockerfile}")
    lint = hadolint.lint(target.dockerfile, dockerfile, project.root)
    outputs["hadolint.json"] = _json([asdict(finding) for finding in lint])

    promises = _promise_checks(project, target, session.engine, progress)
    findings = Findings(vulnerabilities, secrets, misconfigurations)
    verdict = policy.evaluate(service.policy.for_variant(target.variant), findings, entries,
                              options.today, promises)
    result = ScanResult(
        target=target, report_dir=report_dir, dockerfile=dockerfile, image_id=image_id,
        os=os_name, db=db, findings=findings, sbom=sbom, sbom_not_run=sbom_not_run,
        hadolint=lint, unjustified_ignores=hadolint.unjustified_ignores(
            target.dockerfile.read_text()),
        allow_list_files=allow_files, verdict=verdict, trivy_version=trivy_version,
        scanned_at=scanned_at, seconds=time.monotonic() - started,
        tool_outputs=MappingProxyType(outputs),
    )
    return result


def _promise_checks(project: Project, target: ScanTarget, engine: Engine,
                    progress: ScanProgress) -> tuple[CheckResult, ...]:
    """A prod image's attack surface against its flavor's promises; the gate fails on a broken one."""
    flavor = project.catalog.flavors.get(target.flavor)
    if not target.image or target.variant != "prod" or flavor is None:
        return ()
    progress.step(target, f"attack surface against the {target.flavor} flavor's promises")
    return check_promises(engine, target.image, flavor.promises, project.layout.image)


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode()
