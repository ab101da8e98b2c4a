"""`scan` for real: Trivy 0.76 and hadolint against built images, with a fixture vulnerability DB
made from package versions read out of the image itself. No mocks; every scan goes through the
CLI's own entry point."""

from __future__ import annotations

import io
import json
import secrets
import string
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import docker
import docker.errors
import jsonschema
import pytest

from builder.cli.main import main
from builder.engine.client import Engine
from builder.engine.filesystem import read_file
from tests.support.trivydb import OsAdvisory, PipAdvisory, write_trivy_db

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "backend-flask"
PROD = f"{SERVICE}:prod"
SARIF_SCHEMA = ROOT / "tests" / "fixtures" / "sarif-2.1.0.schema.json"

OS_CVE = "CVE-2099-7001"  # fixed in a version just above the installed one: gated
UNFIXED_CVE = "CVE-2099-7002"  # CRITICAL but no fix published: prod's only_fixed lets it pass
PIP_GHSA = "GHSA-iwsc-2099-0001"


# ---- helpers --------------------------------------------------------------------------------------

def scan(*argv: str | Path) -> int:
    """The `scan` subcommand exactly as users run it: the CLI's entry point and its exit codes."""
    return main(["-C", str(ROOT), "scan", *map(str, argv)])


def scan_json(reports: Path, label: str = "prod") -> dict[str, Any]:
    return json.loads((reports / SERVICE / label / "scan.json").read_text())


def ignorefile(path: Path, ids: dict[str, str], expires: date, section: str = "vulnerabilities"
               ) -> Path:
    entries = "".join(f"  - id: {id}\n    statement: {reason}\n    expired_at: {expires}\n"
                      for id, reason in ids.items())
    path.write_text(f"{section}:\n{entries}")
    return path


def sarif_errors(path: Path) -> list[str]:
    schema = json.loads(SARIF_SCHEMA.read_text())
    # The official schema's `run.language` pattern uses an inline (?i) that Python's re rejects,
    # so the schema itself is not meta-validated; instances are, fully.
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(json.loads(path.read_text()))]


def trivy_json_ids(path: Path) -> tuple[set[str], set[str]]:
    """(active, suppressed) finding IDs in a Trivy JSON report written with --show-suppressed."""
    report = json.loads(path.read_text())
    active, suppressed = set(), set()
    for result in report.get("Results") or []:
        active |= {v["VulnerabilityID"] for v in result.get("Vulnerabilities") or []}
        active |= {s["RuleID"] for s in result.get("Secrets") or []}
        for modified in result.get("ExperimentalModifiedFindings") or []:
            finding = modified["Finding"]
            suppressed.add(finding.get("VulnerabilityID") or finding.get("RuleID")
                           or finding.get("ID"))
    return active, suppressed


# ---- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(docker_client: docker.DockerClient) -> docker.DockerClient:
    return docker_client


@pytest.fixture(scope="module")
def prod_image(built: dict) -> str:
    """The session builds every sample image first, so this also works on a fresh machine."""
    assert PROD in built[(SERVICE, "prod")].tags
    return PROD


@pytest.fixture(scope="module")
def installed(engine: Engine, prod_image: str) -> dict[str, str]:
    """Versions really in the distroless image, read without running it (it has no shell)."""
    status = (read_file(engine, prod_image, "/var/lib/dpkg/status.d/zlib1g") or b"").decode()
    fields = dict(line.split(": ", 1) for line in status.splitlines() if ": " in line)
    lock = (read_file(engine, prod_image, "/opt/venv/requirements.lock") or b"").decode()
    pins = dict(line.split("==", 1) for line in lock.splitlines() if "==" in line)
    assert fields.get("Version") and "gunicorn" in pins, (status, lock)
    return {"zlib_source": fields.get("Source", "zlib").split()[0],
            "zlib": fields["Version"], "gunicorn": pins["gunicorn"]}


@pytest.fixture(scope="module")
def db_cache(tmp_path_factory: pytest.TempPathFactory, installed: dict[str, str]) -> Path:
    major = int(installed["gunicorn"].split(".")[0])
    return write_trivy_db(
        tmp_path_factory.mktemp("trivy-cache"),
        [OsAdvisory("ubuntu 24.04", installed["zlib_source"], OS_CVE,
                    f"{installed['zlib']}+imagewright1", "HIGH", "zlib fixture"),
         OsAdvisory("ubuntu 24.04", installed["zlib_source"], UNFIXED_CVE, "", "CRITICAL",
                    "zlib fixture without a fix")],
        [PipAdvisory("gunicorn", PIP_GHSA, f"{major + 1}.0.0", "CRITICAL", "gunicorn fixture")],
    )


@pytest.fixture(scope="module")
def no_allow_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty allow-list, so a repository `.trivyignore.yaml` never changes these tests."""
    path = tmp_path_factory.mktemp("ignore") / "empty.trivyignore.yaml"
    path.write_text("{}\n")
    return path


@pytest.fixture(scope="module")
def first_scan(prod_image: str, db_cache: Path, no_allow_list: Path,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """`scan backend-flask --variant prod` with the fixture DB and no allow-list."""
    reports = tmp_path_factory.mktemp("reports")
    code = scan(SERVICE, "--variant", "prod", "--cache-dir", db_cache, "--reports-dir", reports,
                "--ignorefile", no_allow_list)
    return code, reports


# ---- 1. vulnerabilities, the gate and the allow-list ----------------------------------------------

@pytest.mark.integration
def test_fixture_vulnerabilities_fail_the_prod_gate(first_scan: tuple[int, Path],
                                                    installed: dict[str, str]) -> None:
    code, reports = first_scan
    assert code == 1
    result = scan_json(reports)
    vulns = {v["id"]: v for v in result["vulnerabilities"]["findings"]}
    assert {OS_CVE, UNFIXED_CVE, PIP_GHSA} <= set(vulns)
    assert (vulns[OS_CVE]["package"], vulns[OS_CVE]["installed_version"]) == (
        "zlib1g", installed["zlib"])
    assert vulns[OS_CVE]["fixed_version"] == f"{installed['zlib']}+imagewright1"
    assert (vulns[PIP_GHSA]["package"], vulns[PIP_GHSA]["installed_version"],
            vulns[PIP_GHSA]["kind"]) == ("gunicorn", installed["gunicorn"], "python-pkg")
    assert result["flavor"] == "distroless" and result["image"]["os"] == "ubuntu 24.04"
    gate = result["gate"]
    assert not gate["passed"]
    assert {v["id"] for v in gate["violations"] if v["scanner"] == "vulnerability"} == {
        OS_CVE, PIP_GHSA}  # the unfixed CRITICAL does not gate: prod is only_fixed
    assert result["vulnerabilities"]["by_severity"]["CRITICAL"] >= 2
    summary = (reports / SERVICE / "prod" / "summary.md").read_text()
    assert "**Gate: FAIL**" in summary
    assert OS_CVE in summary and f"{installed['zlib']}+imagewright1" in summary
    assert OS_CVE in trivy_json_ids(reports / SERVICE / "prod" / "trivy.json")[0]
    overall = (reports / "summary.md").read_text()
    assert "**FAIL**" in overall and f"{SERVICE} prod `{PROD}` | FAIL" in overall


@pytest.mark.integration
def test_allow_list_entries_pass_the_gate_until_they_expire(
        first_scan: tuple[int, Path], prod_image: str, db_cache: Path, tmp_path: Path) -> None:
    ids = {OS_CVE: "zlib fix ships with the next base rebuild",
           PIP_GHSA: "gunicorn upgrade tracked in the backlog"}
    valid = ignorefile(tmp_path / "valid.trivyignore.yaml", ids, date.today() + timedelta(days=90))
    reports = tmp_path / "allowed"
    assert scan("--image", prod_image, "--cache-dir", db_cache, "--reports-dir", reports,
                "--ignorefile", valid) == 0
    gate = scan_json(reports)["gate"]
    assert gate["passed"] and gate["problems"] == []
    assert {a["id"]: a["statement"] for a in gate["allowed"]} == ids
    active, suppressed = trivy_json_ids(reports / SERVICE / "prod" / "trivy.json")
    assert {OS_CVE, PIP_GHSA} <= suppressed and not {OS_CVE, PIP_GHSA} & active
    sarif = (reports / SERVICE / "prod" / "trivy.sarif").read_text()
    assert OS_CVE not in sarif and UNFIXED_CVE in sarif

    expired = ignorefile(tmp_path / "expired.trivyignore.yaml", ids,
                         date.today() - timedelta(days=1))
    reports = tmp_path / "expired"
    assert scan("--image", prod_image, "--cache-dir", db_cache, "--reports-dir", reports,
                "--ignorefile", expired) == 1
    gate = scan_json(reports)["gate"]
    assert {v["id"] for v in gate["violations"]} == {OS_CVE, PIP_GHSA}
    assert gate["allowed"] == [] and len(gate["problems"]) == 2
    assert all("expired on" in problem for problem in gate["problems"])
    assert "Allow-list problems" in (reports / SERVICE / "prod" / "summary.md").read_text()

    # Trivy itself honours expired_at too, so the repository's allow-list means the same to
    # someone running plain `trivy` with it.
    _, raw = first_scan
    for entries, should_suppress in ((valid, True), (expired, False)):
        converted = tmp_path / f"converted-{should_suppress}.json"
        subprocess.run(["trivy", "convert", "--quiet", "--format", "json", "--show-suppressed",
                        "--ignorefile", str(entries), "--output", str(converted),
                        str(raw / SERVICE / "prod" / "trivy.json")], check=True, timeout=120)
        active, suppressed = trivy_json_ids(converted)
        assert (OS_CVE in suppressed, OS_CVE in active) == (should_suppress, not should_suppress)


# ---- 2. secrets in image layers -------------------------------------------------------------------

@pytest.fixture()
def image_with_secrets(client: docker.DockerClient, prod_image: str
                       ) -> Iterator[tuple[str, list[str]]]:
    """`FROM backend-flask:prod` plus files carrying fake keys (made up per run, never stored)."""
    upper = string.ascii_uppercase + string.digits
    aws_id = "AKIA" + "".join(secrets.choice(upper) for _ in range(16))
    aws_secret = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    honeycomb = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    files = {
        "aws.env": f"AWS_ACCESS_KEY_ID={aws_id}\naws_secret_access_key = {aws_secret}\n",
        "otel.env": f"OTEL_EXPORTER_OTLP_HEADERS=x-honeycomb-team={honeycomb}\n",
        # The distroless base has no shell: files arrive by COPY, each in its own layer.
        "Dockerfile": (f"FROM {prod_image}\n"
                       "COPY aws.env /app/config/aws.env\n"
                       "COPY otel.env /app/config/otel.env\n"
                       "LABEL io.imagewright.test=1 io.imagewright.service=backend-flask "
                       "io.imagewright.variant=prod io.imagewright.flavor=distroless\n"),
    }
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    context.seek(0)
    tag = f"imagewright-test/planted-secrets:{secrets.token_hex(4)}"
    client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True)
    try:
        yield tag, [aws_id, aws_secret, honeycomb]
    finally:
        client.images.remove(tag, force=True)


@pytest.mark.integration
def test_planted_secrets_fail_the_gate_without_leaking_into_reports(
        image_with_secrets: tuple[str, list[str]], no_allow_list: Path, tmp_path: Path) -> None:
    tag, planted = image_with_secrets
    reports = tmp_path / "reports"
    # An empty cache: no vulnerability DB, yet the secret gate still decides the exit code.
    assert scan("--image", tag, "--cache-dir", tmp_path / "empty-cache", "--reports-dir", reports,
                "--ignorefile", no_allow_list) == 1
    result = scan_json(reports)
    rules = {s["rule_id"]: s for s in result["secrets"]["findings"]}
    assert {"aws-access-key-id", "honeycomb-api-key"} <= set(rules)
    assert rules["aws-access-key-id"]["path"] == "/app/config/aws.env"
    assert rules["honeycomb-api-key"]["path"] == "/app/config/otel.env"
    violations = {v["id"] for v in result["gate"]["violations"] if v["scanner"] == "secret"}
    assert {"aws-access-key-id", "honeycomb-api-key"} <= violations
    assert result["vulnerabilities"]["status"] == "not-run"
    for report in (reports / SERVICE / "prod").iterdir():
        text = report.read_text()
        assert not any(value in text for value in planted), f"{report.name} leaks a secret"
    assert sarif_errors(reports / SERVICE / "prod" / "trivy.sarif") == []


# ---- 3. no vulnerability DB: the scanner is "not run", the rest still runs -------------------------

@pytest.mark.integration
def test_without_a_db_vulnerabilities_are_not_run_and_the_rest_still_reports(
        prod_image: str, no_allow_list: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    code = scan(SERVICE, "--variant", "prod", "--cache-dir", tmp_path / "empty-cache",
                "--reports-dir", reports, "--ignorefile", no_allow_list)
    prod = scan_json(reports)
    vulns = prod["vulnerabilities"]
    assert vulns["status"] == "not-run" and "no Trivy vulnerability DB" in vulns["reason"]
    assert "total" not in vulns and "findings" not in vulns  # never "zero findings"
    assert prod["secrets"]["status"] == "ok" and prod["misconfigurations"]["status"] == "ok"
    assert prod["sbom"]["status"] == "ok" and prod["sbom"]["packages"] > 0
    assert dict(prod["sbom"]["by_type"])["python-pkg"] > 0
    assert prod["gate"]["not_run"] and all(
        v["scanner"] != "vulnerability" for v in prod["gate"]["violations"])
    gates = [scan_json(reports, label)["gate"]["passed"] for label in ("prod", "prod-alpine")]
    assert code == (0 if all(gates) else 1)
    for name in ("trivy.json", "trivy.sarif", "sbom.cdx.json", "hadolint.json",
                 "trivy-config.json", "summary.md"):
        assert (reports / SERVICE / "prod" / name).is_file(), name
    sbom = json.loads((reports / SERVICE / "prod" / "sbom.cdx.json").read_text())
    names = {component["name"] for component in sbom["components"]}
    assert sbom["bomFormat"] == "CycloneDX" and {"zlib1g", "gunicorn"} <= names
    summary = (reports / SERVICE / "prod" / "summary.md").read_text()
    assert "| Vulnerabilities | — | — | — | — | — | **not run** |" in summary
    assert "does not fail the gate by itself" in summary
    assert "not run" in (reports / "summary.md").read_text()


@pytest.mark.integration
def test_a_db_archive_is_unpacked_into_the_cache(prod_image: str, db_cache: Path,
                                                no_allow_list: Path, tmp_path: Path) -> None:
    archive = tmp_path / "trivy-db.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("trivy.db", "metadata.json"):
            tar.add(db_cache / "db" / name, arcname=name)
    cache, reports = tmp_path / "cache", tmp_path / "reports"
    assert scan("--image", prod_image, "--cache-dir", cache, "--db-archive", archive,
                "--reports-dir", reports, "--ignorefile", no_allow_list) == 1
    result = scan_json(reports)
    assert result["db"]["mode"] == "archive"
    assert OS_CVE in {v["id"] for v in result["vulnerabilities"]["findings"]}
    assert (cache / "db" / "trivy.db").is_file()

    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(broken, "w:gz") as tar:
        tar.add(db_cache / "db" / "trivy.db", arcname="trivy.db")
    assert scan("--image", prod_image, "--cache-dir", tmp_path / "c2", "--db-archive", broken,
                "--reports-dir", reports) == 2


@pytest.mark.integration
def test_an_unreachable_db_repository_means_not_run_with_trivys_reason(
        prod_image: str, no_allow_list: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    scan("--image", prod_image, "--cache-dir", tmp_path / "cache", "--db-repository",
         "127.0.0.1:9/nowhere/trivy-db:2", "--reports-dir", reports, "--ignorefile", no_allow_list)
    vulns = scan_json(reports)["vulnerabilities"]
    assert vulns["status"] == "not-run" and "127.0.0.1:9" in vulns["reason"]
    assert scan_json(reports)["secrets"]["status"] == "ok"


@pytest.mark.integration
def test_a_malformed_allow_list_is_a_usage_error(prod_image: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.trivyignore.yaml"
    bad.write_text("vulnerabilities:\n  - id: CVE-1\n    expires: 2030-01-01\n")
    assert scan("--image", prod_image, "--cache-dir", tmp_path / "cache", "--reports-dir",
                tmp_path / "reports", "--ignorefile", bad) == 2


# ---- 4. SARIF -------------------------------------------------------------------------------------

@pytest.mark.integration
def test_sarif_validates_against_the_sarif_2_1_0_schema(first_scan: tuple[int, Path]) -> None:
    _, reports = first_scan
    for label in ("prod", "prod-alpine"):
        path = reports / SERVICE / label / "trivy.sarif"
        assert sarif_errors(path) == [], label
        (run,) = json.loads(path.read_text())["runs"]
        assert run["automationDetails"]["id"] == f"imagewright/{SERVICE}/{label}/"
        dockerfile = f"build/{SERVICE}/Dockerfile.prod-" + ("alpine" if label != "prod"
                                                            else "distroless")
        assert {loc["physicalLocation"]["artifactLocation"]["uri"]
                for result in run["results"] for loc in result["locations"]} <= {dockerfile}
    (run,) = json.loads((reports / SERVICE / "prod" / "trivy.sarif").read_text())["runs"]
    assert {OS_CVE, PIP_GHSA} <= {result["ruleId"] for result in run["results"]}


# ---- 5. hadolint ----------------------------------------------------------------------------------

@pytest.mark.integration
def test_hadolint_reports_every_rendered_dockerfile_including_unbuildable_alpine(
        first_scan: tuple[int, Path]) -> None:
    _, reports = first_scan
    for label in ("prod", "prod-alpine"):
        findings = json.loads((reports / SERVICE / label / "hadolint.json").read_text())
        assert isinstance(findings, list)
        assert scan_json(reports, label)["hadolint"]["count"] == len(findings)
    alpine = scan_json(reports, "prod-alpine")
    assert alpine["image"] is None and "not built on this machine" in alpine["image_missing"]
    assert alpine["dockerfile"] == f"build/{SERVICE}/Dockerfile.prod-alpine"


# ---- 6. --image: the command line wins, labels never decide on their own ------------------------

@pytest.fixture(scope="module")
def relabelled(client: docker.DockerClient, prod_image: str) -> Iterator[Callable[..., str]]:
    """`FROM backend-flask:prod` with other io.imagewright.* labels, as a careless or hostile
    build would set them (one LABEL layer, no files)."""
    made: list[str] = []

    def build(**labels: str) -> str:
        tag = f"imagewright-test/relabelled:{secrets.token_hex(4)}"
        pairs = " ".join(f"io.imagewright.{key}={json.dumps(value)}" for key, value in labels.items())
        client.images.build(fileobj=io.BytesIO(f"FROM {prod_image}\nLABEL {pairs}\n".encode()),
                            tag=tag, pull=False, rm=True)
        made.append(tag)
        return tag

    yield build
    for tag in made:
        client.images.remove(tag, force=True)


@pytest.mark.parametrize(("labels", "explicit", "message"), [
    ({"service": "../../../tmp/evil"}, [], "'../../../tmp/evil' is not a service name"),
    ({"service": "no-such-service"}, [], "images/no-such-service/image.yaml: no such service"),
    ({"service": "backend-fastapi"}, [SERVICE],
     "labelled io.imagewright.service='backend-fastapi', but the command line says 'backend-flask'"),
    ({"variant": "dev"}, ["--variant", "prod"],
     "labelled io.imagewright.variant='dev', but the command line says 'prod'"),
    ({"flavor": "../x"}, [], "label io.imagewright.flavor='../x' is not one of backend-flask's"),
], ids=["path-like", "unknown", "other-service", "other-variant", "unknown-flavor"])
def test_image_labels_never_decide_alone(relabelled: Callable[..., str], tmp_path: Path,
                                         labels: dict[str, str], explicit: list[str],
                                         message: str) -> None:
    image = relabelled(**labels)
    reports = tmp_path / "reports"
    result = subprocess.run([sys.executable, "-m", "builder", "-C", str(ROOT), "scan", "--image", image,
                             *explicit, "--reports-dir", str(reports)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not reports.exists() and not Path("/tmp/evil").exists()


@pytest.mark.parametrize("ref", ["../../etc/passwd", "UPPER:tag", "name:tag with space", "a:b:c"])
def test_a_malformed_image_reference_is_one_line(ref: str) -> None:
    result = subprocess.run([sys.executable, "-m", "builder", "-C", str(ROOT), "scan", "--image", ref],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: --image {ref!r} is not an image reference "
                                     "(name[:tag][@sha256:digest])")
