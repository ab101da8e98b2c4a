"""Reading Trivy 0.76's reports: image (vulnerabilities, secrets), config, CycloneDX, SARIF, and the
vulnerability DB archive. The reports are real: the Trivy binary on PATH scans an image archive
written by tests.support.imagetar against a DB written by tests.support.trivydb (no engine, no
network); small hand-built documents cover the shapes those runs do not produce."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from builder.core.errors import FaultError, UserError
from builder.scan import trivy
from builder.scan.trivy import (
    DbStatus,
    Misconfiguration,
    Sbom,
    Secret,
    Vulnerability,
    _db_failure,
    _load,
    _parse_config,
    _parse_image,
    _reason,
    _unpack_db_archive,
    cache_dir_for,
    merge_sarif,
    prepare_db,
    sbom_summary,
)
from tests.support.imagetar import dpkg_status, python_metadata, ubuntu_release_files, write_image_archive
from tests.support.trivydb import OsAdvisory, PipAdvisory, write_trivy_db

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MISCONFIGURED = FIXTURES / "trivy" / "Dockerfile.misconfigured"
SARIF_SCHEMA = FIXTURES / "sarif-2.1.0.schema.json"

ZLIB = ("zlib1g", "zlib", "1:1.3.dfsg-3.1ubuntu2.1")
LIBC = ("libc6", "glibc", "2.39-0ubuntu8.4")
FLASK_METADATA = "opt/venv/lib/python3.12/site-packages/flask-2.0.0.dist-info/METADATA"
ZLIB_CVE, LIBC_CVE, FLASK_GHSA = "CVE-2099-0101", "CVE-2099-0102", "GHSA-iwtp-2099-0001"
ZLIB_TITLE = "zlib: overflow | in inflate\nwith a line break"
# Made up per the formats Trivy's rules match; valid nowhere.
AWS_KEY_ID = "AKIA" + "Q3EGRTWX5MZPL7VN"
HONEYCOMB_KEY = "hc" + "0123456789abcdefghijABCDEFGHIJ"


@dataclass(frozen=True)
class Scanned:
    report: dict[str, Any]  # trivy image --format json, as scan_image writes it
    raw: Path
    image_id: str


def trivy_image(archive: Path, cache_dir: Path, output: Path,
                scanners: str = "vuln,secret") -> subprocess.CompletedProcess[str]:
    """`trivy image` as scan_image runs it, on an archive (`--input`) instead of the engine."""
    return subprocess.run(
        [trivy.binary(), "image", "--quiet", "--config", "", "--skip-version-check",
         "--disable-telemetry", "--input", str(archive), "--format", "json", "--output", str(output),
         "--cache-dir", str(cache_dir), "--ignorefile", "", "--list-all-pkgs", "--secret-config",
         str(trivy.SECRET_CONFIG), "--skip-java-db-update", "--offline-scan", "--skip-db-update",
         "--scanners", scanners],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def image_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    archive = tmp_path_factory.mktemp("image") / "image.tar"
    image_id = write_image_archive(archive, "imagewright-test/trivy-parse:1", [
        {**ubuntu_release_files(), "/var/lib/dpkg/status": dpkg_status([ZLIB, LIBC])},
        {f"/{FLASK_METADATA}": python_metadata("Flask", "2.0.0")},
        {"/app/config/aws.env": f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\n".encode(),
         "/app/config/otel.env": f"OTEL_EXPORTER_OTLP_HEADERS=x-honeycomb-team={HONEYCOMB_KEY}\n"
                                 .encode()},
    ])
    return archive, image_id


@pytest.fixture(scope="module")
def db_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trivy_db(
        tmp_path_factory.mktemp("trivy-cache"),
        [OsAdvisory("ubuntu 24.04", "zlib", ZLIB_CVE, f"{ZLIB[2]}+imagewright1", "HIGH", ZLIB_TITLE),
         OsAdvisory("ubuntu 24.04", "glibc", LIBC_CVE, "", "critical", "glibc, no fix yet")],
        [PipAdvisory("Flask", FLASK_GHSA, "2.0.1", "MEDIUM", "flask fixture")],
    )


@pytest.fixture(scope="module")
def scanned(image_archive: tuple[Path, str], db_cache: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    archive, image_id = image_archive
    raw = tmp_path_factory.mktemp("report") / "image.json"
    result = trivy_image(archive, db_cache, raw)
    assert result.returncode == 0, result.stderr
    return Scanned(_load(raw), raw, image_id)


@pytest.fixture(scope="module")
def config_scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[Misconfiguration, ...]]:
    """`trivy config` on the fixture Dockerfile, laid out as a rendered one is: build/svc/…"""
    workdir = tmp_path_factory.mktemp("config")
    dockerfile = workdir / "build" / "svc" / "Dockerfile.prod"
    dockerfile.parent.mkdir(parents=True)
    dockerfile.write_bytes(MISCONFIGURED.read_bytes())
    raw, outcome = trivy.scan_dockerfile(dockerfile, "build/svc/Dockerfile.prod", workdir / "cache",
                                         workdir)
    assert outcome.ran
    return raw, outcome.items


# ---- trivy image: vulnerabilities -----------------------------------------------------------------

def test_vulnerabilities_of_os_and_python_packages(scanned: Scanned) -> None:
    vulnerabilities, _ = _parse_image(scanned.report)
    found = {v.id: v for v in vulnerabilities}
    assert set(found) == {ZLIB_CVE, LIBC_CVE, FLASK_GHSA}
    assert found[ZLIB_CVE] == Vulnerability(
        id=ZLIB_CVE, severity="HIGH", package="zlib1g", installed_version=ZLIB[2],
        fixed_version=f"{ZLIB[2]}+imagewright1", status="fixed", kind="ubuntu", path="",
        purl="pkg:deb/ubuntu/zlib1g@1.3.dfsg-3.1ubuntu2.1?arch=amd64&distro=ubuntu-24.04&epoch=1",
        title=ZLIB_TITLE)
    assert found[ZLIB_CVE].fixable
    libc = found[LIBC_CVE]
    assert (libc.severity, libc.fixed_version, libc.status, libc.fixable) == (
        "CRITICAL", "", "affected", False)
    flask = found[FLASK_GHSA]
    assert (flask.kind, flask.package, flask.installed_version, flask.fixed_version) == (
        "python-pkg", "Flask", "2.0.0", "2.0.1")
    assert (flask.path, flask.purl, flask.severity) == (FLASK_METADATA, "pkg:pypi/flask@2.0.0", "MEDIUM")


def test_the_report_carries_what_scan_image_reads_from_its_metadata(scanned: Scanned) -> None:
    metadata = scanned.report["Metadata"]
    assert metadata["ImageID"] == scanned.image_id
    assert (metadata["OS"]["Family"], metadata["OS"]["Name"]) == ("ubuntu", "24.04")


# ---- trivy image: secrets -------------------------------------------------------------------------

def test_secrets_are_read_with_their_file_line_and_layer_and_stay_redacted(scanned: Scanned) -> None:
    _, secrets = _parse_image(scanned.report)
    found = {s.rule_id: s for s in secrets}
    assert set(found) == {"aws-access-key-id", "honeycomb-api-key"}  # the second from our config
    last_layer = scanned.report["Metadata"]["DiffIDs"][-1]
    assert found["aws-access-key-id"] == Secret(
        rule_id="aws-access-key-id", category="AWS", severity="CRITICAL", title="AWS Access Key ID",
        path="/app/config/aws.env", line=1, layer=last_layer,
        match="AWS_ACCESS_KEY_ID=" + "*" * len(AWS_KEY_ID))
    honeycomb = found["honeycomb-api-key"]
    assert (honeycomb.category, honeycomb.path, honeycomb.layer) == (
        "Honeycomb", "/app/config/otel.env", last_layer)
    assert not any(key in repr(secrets) for key in (AWS_KEY_ID, HONEYCOMB_KEY))


def test_a_secret_only_scan_reports_no_vulnerabilities(image_archive: tuple[Path, str],
                                                       tmp_path: Path) -> None:
    raw = tmp_path / "image.json"
    result = trivy_image(image_archive[0], tmp_path / "empty-cache", raw, scanners="secret")
    assert result.returncode == 0, result.stderr
    vulnerabilities, secrets = _parse_image(_load(raw))
    assert vulnerabilities == () and len(secrets) == 2


# ---- hand-built shapes ----------------------------------------------------------------------------

@pytest.mark.parametrize("report", [{}, {"Results": None}, {"Results": []},
                                    {"Results": [{"Target": "x", "Vulnerabilities": None,
                                                  "Secrets": None}]}])
def test_a_report_without_findings_parses_to_nothing(report: Mapping[str, Any]) -> None:
    assert _parse_image(report) == ((), ())


def test_missing_and_odd_fields_get_safe_defaults() -> None:
    report = {"Results": [{
        "Target": "/etc/app.conf", "Type": "ubuntu",
        "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "p", "Severity": "high",
                             "FixedVersion": None}, {}],
        "Secrets": [{"RuleID": "r", "Match": "x" * 500}],
    }]}
    (first, empty), (secret,) = _parse_image(report)
    assert (first.severity, first.fixed_version, first.fixable, first.path, first.purl, first.title) == (
        "HIGH", "", False, "", "", "")
    assert (empty.id, empty.severity, empty.kind) == ("", "UNKNOWN", "ubuntu")
    assert (secret.severity, secret.line, secret.layer, secret.path) == ("UNKNOWN", 0, "", "/etc/app.conf")
    assert secret.match == "x" * 200


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]"])
def test_an_unreadable_report_is_a_fault(content: str, tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(content)
    with pytest.raises(FaultError, match="trivy"):
        _load(path)


# ---- trivy config ---------------------------------------------------------------------------------

def test_dockerfile_checks_that_fail_are_read_with_their_line(
        config_scan: tuple[Path, tuple[Misconfiguration, ...]]) -> None:
    _, found = config_scan
    by_id = {m.id: m for m in found}
    assert set(by_id) == {"DS-0001", "DS-0002", "DS-0026", "DS-0029"}
    assert {m.dockerfile for m in found} == {"build/svc/Dockerfile.prod"}
    assert {m.id: m.line for m in found} == {"DS-0001": 2, "DS-0002": 0, "DS-0026": 0, "DS-0029": 3}
    latest = by_id["DS-0001"]
    assert (latest.severity, latest.title) == ("MEDIUM", "':latest' tag used")
    assert latest.message == "Specify a tag in the 'FROM' statement for image 'ubuntu'"
    assert latest.resolution and latest.url == "https://avd.aquasec.com/misconfig/ds-0001"
    assert by_id["DS-0029"].severity == "HIGH"


def test_only_failed_checks_are_findings() -> None:
    def check(id: str, status: str) -> dict[str, Any]:
        return {"ID": id, "Status": status, "Severity": "low", "Title": id,
                "CauseMetadata": {"Provider": "Dockerfile", "StartLine": 4}}

    report = {"Results": [{"Target": "Dockerfile", "Misconfigurations": [
        check("DS-0001", "PASS"), check("DS-0002", "FAIL"), check("DS-0003", "EXCEPTION")]},
        {"Target": "other", "Misconfigurations": None}]}
    (only,) = _parse_config(report, "build/x/Dockerfile.dev")
    assert (only.id, only.severity, only.line, only.dockerfile) == ("DS-0002", "LOW", 4,
                                                                    "build/x/Dockerfile.dev")


# ---- CycloneDX ------------------------------------------------------------------------------------

def test_sbom_counts_packages_by_trivy_type(scanned: Scanned) -> None:
    cyclonedx = trivy.convert(scanned.raw, "cyclonedx", None)
    document = json.loads(cyclonedx)
    assert document["bomFormat"] == "CycloneDX"
    assert {c["type"] for c in document["components"]} > {"library"}, "the OS is a component too"
    assert sbom_summary(cyclonedx) == Sbom(3, (("python-pkg", 1), ("ubuntu", 2)))


def test_sbom_libraries_without_a_type_are_counted_as_unknown() -> None:
    document = {"components": [
        {"type": "library", "name": "a", "properties": [
            {"name": "aquasecurity:trivy:PkgType", "value": "python-pkg"}]},
        {"type": "library", "name": "b"},
        {"type": "library", "name": "c", "properties": [{"name": "other", "value": "x"}]},
        {"type": "operating-system", "name": "ubuntu"},
        {"type": "application", "name": "image.tar"},
    ]}
    assert sbom_summary(json.dumps(document).encode()) == Sbom(3, (("python-pkg", 1), ("unknown", 2)))
    assert sbom_summary(b'{"bomFormat": "CycloneDX"}') == Sbom(0, ())


# ---- SARIF ----------------------------------------------------------------------------------------

def sarif_errors(document: Mapping[str, Any]) -> list[str]:
    schema = json.loads(SARIF_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_image_and_config_sarif_merge_into_one_run_anchored_to_the_dockerfile(
        scanned: Scanned, config_scan: tuple[Path, tuple[Misconfiguration, ...]]) -> None:
    logs = [trivy.convert(scanned.raw, "sarif", None), trivy.convert(config_scan[0], "sarif", None)]
    inputs = [json.loads(log)["runs"][0] for log in logs]
    merged = merge_sarif(logs, "build/svc/Dockerfile.prod", "imagewright/svc/prod/")
    assert sarif_errors(merged) == []
    (run,) = merged["runs"]
    assert merged["version"] == "2.1.0" and run["automationDetails"] == {"id": "imagewright/svc/prod/"}
    assert run["tool"]["driver"]["name"] == "Trivy"
    rules = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert len(rules) == len(set(rules))
    assert len(run["results"]) == sum(len(log["results"]) for log in inputs)
    assert {ZLIB_CVE, LIBC_CVE, FLASK_GHSA, "aws-access-key-id", "DS-0001", "DS-0029"} <= {
        result["ruleId"] for result in run["results"]}
    lines: dict[str, int] = {}
    for result in run["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": "build/svc/Dockerfile.prod"}
        lines[result["ruleId"]] = physical["region"]["startLine"]
    # Image findings have no line in the repository: line 1; config findings keep theirs.
    assert lines[ZLIB_CVE] == lines["aws-access-key-id"] == 1
    assert (lines["DS-0001"], lines["DS-0029"]) == (2, 3)
    assert AWS_KEY_ID not in json.dumps(merged)


def test_a_rule_in_both_logs_is_listed_once_and_results_point_at_it() -> None:
    def log(rule_ids: Sequence[str], uri: str) -> bytes:
        return json.dumps({"version": "2.1.0", "runs": [{
            "tool": {"driver": {"name": "Trivy", "rules": [{"id": r} for r in rule_ids]}},
            "results": [{"ruleId": r, "ruleIndex": i, "message": {"text": r},
                         "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri},
                                                             "region": {"startLine": 7}}}]}
                        for i, r in enumerate(rule_ids)],
            "properties": {"imageName": "svc:prod"} if "image" in uri else {},
        }]}).encode()

    merged = merge_sarif([log(["A", "B"], "image.tar"), log(["B", "C"], "Dockerfile.prod")],
                         "build/svc/Dockerfile.prod", "cat/")
    (run,) = merged["runs"]
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == ["A", "B", "C"]
    assert [(r["ruleId"], r["ruleIndex"]) for r in run["results"]] == [
        ("A", 0), ("B", 1), ("B", 1), ("C", 2)]
    starts = [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in run["results"]]
    assert starts == [1, 1, 7, 7]
    assert run["properties"] == {"imageName": "svc:prod"}
    assert run["columnKind"] == "utf16CodeUnits"


def test_no_sarif_run_at_all_is_a_fault() -> None:
    with pytest.raises(FaultError, match="no SARIF run"):
        merge_sarif([b'{"version": "2.1.0", "runs": []}'], "Dockerfile", "cat/")


# ---- the vulnerability DB -------------------------------------------------------------------------

def db_archive(path: Path, source: Path, members: Mapping[str, str]) -> Path:
    """A tar.gz with `source/db/<file>` stored under each given member name."""
    with tarfile.open(path, "w:gz") as tar:
        for member, name in members.items():
            tar.add(source / "db" / name, arcname=member)
    return path


def test_without_a_db_trivy_refuses_and_the_reason_is_recognised(image_archive: tuple[Path, str],
                                                                 tmp_path: Path) -> None:
    cache = tmp_path / "empty-cache"
    result = trivy_image(image_archive[0], cache, tmp_path / "out.json", scanners="vuln")
    assert result.returncode != 0
    reason = _reason(result)
    assert "\n" not in reason and not reason.startswith(("20", "FATAL"))
    assert "--skip-db-update cannot be specified on the first run" in reason
    message = _db_failure(result, DbStatus("cache", cache, "cached"))
    assert message == f"the Trivy DB in {cache}/db is incomplete or unreadable ({reason})"


@pytest.mark.parametrize("layout", [
    {"trivy.db": "trivy.db", "metadata.json": "metadata.json"},
    {"db/trivy.db": "trivy.db", "db/metadata.json": "metadata.json"},  # as `oras pull` leaves it
])
def test_a_db_archive_is_unpacked_into_the_cache_and_usable(
        layout: Mapping[str, str], db_cache: Path, image_archive: tuple[Path, str],
        tmp_path: Path) -> None:
    archive = db_archive(tmp_path / "trivy-db.tar.gz", db_cache, layout)
    cache = tmp_path / "cache"
    status = prepare_db(cache, archive)
    updated_at = json.loads((db_cache / "db" / "metadata.json").read_text())["UpdatedAt"]
    day = updated_at[:10]  # written with the DB moments ago: "0 days ago"
    assert (status.mode, status.cache_dir, status.usable) == ("archive", cache, True)
    assert status.detail == f"from trivy-db.tar.gz, updated {day} (0 days ago)"
    assert status.updated_at == updated_at
    assert sorted(p.name for p in (cache / "db").iterdir()) == ["metadata.json", "trivy.db"]
    assert (cache / "db" / "trivy.db").read_bytes() == (db_cache / "db" / "trivy.db").read_bytes()
    result = trivy_image(image_archive[0], cache, tmp_path / "out.json", scanners="vuln")
    assert result.returncode == 0, result.stderr
    vulnerabilities, _ = _parse_image(_load(tmp_path / "out.json"))
    assert {v.id for v in vulnerabilities} == {ZLIB_CVE, LIBC_CVE, FLASK_GHSA}
    # The next run finds it in the cache.
    cached = prepare_db(cache)
    assert (cached.mode, cached.updated_at) == ("cache", status.updated_at)
    assert cached.detail == f"cached in {cache}/db, updated {day} (0 days ago)"


@pytest.mark.parametrize(("members", "message"), [
    ({"trivy.db": "trivy.db"}, r"no metadata\.json in it"),
    ({"a/b/trivy.db": "trivy.db", "a/b/metadata.json": "metadata.json"},
     r"no metadata\.json, trivy\.db in it"),  # deeper than one folder is not the DB layer
])
def test_an_archive_without_the_db_files_is_a_usage_error(
        members: Mapping[str, str], message: str, db_cache: Path, tmp_path: Path) -> None:
    archive = db_archive(tmp_path / "db.tar.gz", db_cache, members)
    with pytest.raises(UserError, match=message):
        prepare_db(tmp_path / "cache", archive)
    assert list((tmp_path / "cache" / "db").iterdir()) == [], "nothing half-unpacked is left"


def test_an_archive_of_another_db_schema_is_refused_and_leaves_the_cache_alone(
        db_cache: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    (old / "db").mkdir(parents=True)
    (old / "db" / "trivy.db").write_bytes(b"old")
    (old / "db" / "metadata.json").write_text(json.dumps({"Version": 1}))
    archive = db_archive(tmp_path / "v1.tar.gz", old, {"trivy.db": "trivy.db",
                                                       "metadata.json": "metadata.json"})
    cache = tmp_path / "cache"
    (cache / "db").mkdir(parents=True)
    (cache / "db" / "trivy.db").write_bytes(b"current")
    with pytest.raises(UserError, match=r"v1\.tar\.gz:metadata\.json: Trivy 0\.76 needs DB schema "
                                        r"version 2, this one is 1"):
        _unpack_db_archive(archive, cache / "db")
    assert [p.name for p in (cache / "db").iterdir()] == ["trivy.db"]
    assert (cache / "db" / "trivy.db").read_bytes() == b"current"


@pytest.mark.parametrize(("content", "message"), [
    (b"not a tar archive", "not a readable tar archive"),
    (None, "no such file"),
])
def test_a_bad_archive_path_is_a_usage_error(content: bytes | None, message: str,
                                             tmp_path: Path) -> None:
    archive = tmp_path / "trivy-db.tar.gz"
    if content is not None:
        archive.write_bytes(content)
    with pytest.raises(UserError, match=re.escape(f"--db-archive {archive}: {message}")):
        prepare_db(tmp_path / "cache", archive)


def test_unreadable_cached_metadata_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "trivy.db").write_bytes(b"")
    (tmp_path / "db" / "metadata.json").write_text("{")
    with pytest.raises(UserError, match=r"metadata\.json: not a Trivy DB metadata file"):
        prepare_db(tmp_path)


def test_db_modes_without_an_archive(tmp_path: Path) -> None:
    missing = prepare_db(tmp_path)
    assert (missing.mode, missing.usable) == ("missing", False)
    assert missing.detail.startswith(f"no Trivy vulnerability DB in {tmp_path}/db")
    mirror = prepare_db(tmp_path, repository="mirror.example:5000/trivy-db:2")
    assert (mirror.mode, mirror.repository, mirror.usable) == (
        "repository", "mirror.example:5000/trivy-db:2", True)
    with pytest.raises(UserError, match="exclude each other"):
        prepare_db(tmp_path, tmp_path / "db.tar.gz", "mirror.example:5000/trivy-db:2")


def test_the_cache_dir_is_the_option_then_the_environment_then_the_project(tmp_path: Path) -> None:
    project_cache = tmp_path / ".cache"
    environ = {trivy.CACHE_ENV: str(tmp_path / "env")}
    assert cache_dir_for(project_cache, tmp_path / "opt", environ) == (tmp_path / "opt").resolve()
    assert cache_dir_for(project_cache, None, environ) == (tmp_path / "env").resolve()
    assert cache_dir_for(project_cache, None, {}) == project_cache / "trivy"
    assert cache_dir_for(project_cache, None, {trivy.CACHE_ENV: ""}) == project_cache / "trivy"
