"""The scan report writers (`scan.json`, a target's `summary.md`, `reports/summary.md`) on
hand-built scan results: the JSON schema compare reads, counts by severity, Markdown that stays a
table whatever Trivy's titles contain, and scanners that did not run spelled out as such."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from builder.report.scan import (
    SCHEMA,
    gate_reason,
    gate_word,
    overall_markdown,
    policy_text,
    scan_json,
    summary_markdown,
    write_overall_summary,
    write_target_reports,
)
from builder.scan.hadolint import LintFinding
from builder.scan.policy import IgnoreEntry, evaluate
from builder.scan.scanner import ScanResult, ScanTarget
from builder.scan.trivy import DbStatus, Findings, Misconfiguration, Outcome, Sbom, Secret, Vulnerability
from builder.spec.service import SEVERITIES, GatePolicy

TODAY = date(2026, 6, 1)
# Spelled out rather than taken from DEFAULT_POLICY: these tests are about the writers.
PROD = GatePolicy(fail_on_severity=("CRITICAL", "HIGH"), only_fixed=True, fail_on_secrets=True,
                  fail_on_misconfig_severity=("CRITICAL", "HIGH"))
DEV = GatePolicy(fail_on_severity=(), only_fixed=True, fail_on_secrets=False,
                 fail_on_misconfig_severity=())
DB = DbStatus("cache", Path("/cache/trivy"), "cached in /cache/trivy/db, updated 2026-05-30 (2 days ago)",
              "2026-05-30T00:00:00Z")
NO_DB = "no Trivy vulnerability DB in /cache/trivy/db"
IMAGE_ID = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
# Trivy copies advisory titles verbatim; real ones carry pipes and line breaks.
NASTY_TITLE = "zlib: heap overflow | in inflate\nwhen windowBits=8"


def vuln(id: str, severity: str, fixed: str = "1.2.4", title: str = "fixture",
         package: str = "zlib1g") -> Vulnerability:
    return Vulnerability(id=id, severity=severity, package=package, installed_version="1.2.3",
                         fixed_version=fixed, status="fixed" if fixed else "affected", kind="ubuntu",
                         path="", purl=f"pkg:deb/ubuntu/{package}@1.2.3", title=title)


SECRET = Secret(rule_id="aws-access-key-id", category="AWS", severity="CRITICAL",
                title="AWS | Access Key ID", path="/app/config/aws.env", line=1,
                layer="sha256:feedfacecafebeef0000", match="AWS_ACCESS_KEY_ID=****")
MISCONFIG = Misconfiguration(id="DS-0002", severity="HIGH", title="Image user should not be\n'root'",
                             message="Specify at least 1 USER command", dockerfile="build/svc/Dockerfile.dev",
                             line=0, resolution="Add 'USER <non root user name>' | to the Dockerfile",
                             url="https://avd.aquasec.com/misconfig/ds-0002")
LINT = (LintFinding("DL3008", "warning", "Pin versions | in apt get install", "build/svc/Dockerfile.dev", 7),
        LintFinding("DL3059", "info", "Multiple consecutive `RUN`", "build/svc/Dockerfile.dev", 9))
SBOM = Sbom(42, (("python-pkg", 30), ("ubuntu", 12)))
VULNS = (vuln("CVE-2099-0005", "LOW"), vuln("CVE-2099-0001", "CRITICAL", title=NASTY_TITLE),
         vuln("CVE-2099-0002", "CRITICAL", fixed=""), vuln("CVE-2099-0003", "HIGH", package="libc6"),
         vuln("CVE-2099-0004", "UNKNOWN", fixed=""))


def target(label: str = "prod", image: str = "svc:prod", why: str = "") -> ScanTarget:
    variant = "dev" if label == "dev" else "prod"
    flavor = "" if variant == "dev" else label.removeprefix("prod-") if label != "prod" else "distroless"
    return ScanTarget("svc", label, variant, flavor, Path(f"/repo/build/svc/Dockerfile.{label}"),
                      image, why)


def tool_outputs(image: bool) -> dict[str, bytes]:
    """What the tools write for a target: no image, no image report and no SBOM."""
    names = ("trivy.json", "trivy-config.json", "trivy.sarif", "sbom.cdx.json", "hadolint.json")
    return {name: f"{name} as the tool wrote it\n".encode() for name in names
            if image or name not in ("trivy.json", "sbom.cdx.json")}


def result(findings: Findings, *, policy: GatePolicy = PROD,
           scan_target: ScanTarget | None = None, ignores: tuple[IgnoreEntry, ...] = (),
           sbom: Sbom | None = SBOM,
           hadolint: tuple[LintFinding, ...] = LINT, unjustified: tuple[int, ...] = (),
           reports_dir: Path = Path("/repo/reports")) -> ScanResult:
    scanned = scan_target or target()
    return ScanResult(
        target=scanned, report_dir=reports_dir / "svc" / scanned.label,
        dockerfile=f"build/svc/Dockerfile.{scanned.label}",
        image_id=IMAGE_ID if scanned.image else "", os="ubuntu 24.04" if scanned.image else "",
        db=DB, findings=findings, sbom=sbom if scanned.image else None,
        sbom_not_run="" if scanned.image else scanned.why_no_image, hadolint=hadolint,
        unjustified_ignores=unjustified, allow_list_files=(".trivyignore.yaml",),
        verdict=evaluate(policy, findings, ignores, TODAY), trivy_version="0.76.0",
        scanned_at="2026-06-01T12:00:00Z", seconds=3.14159,
        tool_outputs=tool_outputs(bool(scanned.image)))


def everything_found() -> ScanResult:
    return result(Findings(Outcome(VULNS), Outcome((SECRET,)), Outcome((MISCONFIG,))))


def not_run(reason: str = NO_DB) -> Findings:
    return Findings(Outcome(not_run=reason), Outcome(), Outcome())


def document(scan: ScanResult) -> dict[str, Any]:
    text = scan_json(scan)
    assert text.endswith("}\n")
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def table_rows(markdown: str) -> list[list[str]]:
    """Each table line's cells, split on unescaped pipes only (as a Markdown renderer does)."""
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            for line in markdown.splitlines() if line.startswith("|")]


def tables(markdown: str) -> list[list[list[str]]]:
    """The rows of each table (consecutive table lines) in `markdown`."""
    found: list[list[list[str]]] = []
    previous_was_row = False
    for line in markdown.splitlines():
        is_row = line.startswith("|")
        if is_row:
            if not previous_was_row:
                found.append([])
            found[-1].extend(table_rows(line))
        previous_was_row = is_row
    return found


# ---- scan.json ------------------------------------------------------------------------------------

def test_scan_json_has_the_documented_schema() -> None:
    doc = document(everything_found())
    assert list(doc) == ["schema", "service", "label", "variant", "flavor", "image", "image_missing",
                         "dockerfile", "scanned_at", "seconds", "trivy_version", "db", "allow_list",
                         "vulnerabilities", "secrets", "misconfigurations", "sbom", "hadolint", "gate",
                         "files"]
    assert doc["schema"] == SCHEMA == "imagewright.scan/1"
    assert (doc["service"], doc["label"], doc["variant"], doc["flavor"]) == (
        "svc", "prod", "prod", "distroless")
    assert doc["image"] == {"ref": "svc:prod", "id": IMAGE_ID, "os": "ubuntu 24.04"}
    assert doc["image_missing"] is None
    assert doc["dockerfile"] == "build/svc/Dockerfile.prod" and doc["seconds"] == 3.14
    assert doc["db"] == {"mode": "cache", "detail": DB.detail, "updated_at": "2026-05-30T00:00:00Z"}
    assert doc["allow_list"] == [".trivyignore.yaml"]
    assert set(doc["vulnerabilities"]) == {"status", "total", "by_severity", "fixable", "allowed",
                                           "findings"}
    assert set(doc["secrets"]) == set(doc["misconfigurations"]) == {
        "status", "count", "by_severity", "allowed", "findings"}
    assert doc["sbom"] == {"status": "ok", "file": "sbom.cdx.json", "packages": 42,
                           "by_type": {"python-pkg": 30, "ubuntu": 12}}
    assert set(doc["gate"]) == {"variant", "passed", "enforcing", "policy", "violations", "allowed",
                                "problems", "not_run", "promises"}
    assert doc["files"][-2:] == ["scan.json", "summary.md"]


def test_scan_json_counts_findings_by_severity_most_severe_first() -> None:
    doc = document(everything_found())
    vulns = doc["vulnerabilities"]
    assert vulns["status"] == "ok" and vulns["total"] == 5 and vulns["fixable"] == 3
    assert list(vulns["by_severity"].items()) == [("CRITICAL", 2), ("HIGH", 1), ("MEDIUM", 0),
                                                  ("LOW", 1), ("UNKNOWN", 1)]
    assert [f["id"] for f in vulns["findings"]] == [v.id for v in VULNS]
    assert vulns["findings"][1] == {
        "id": "CVE-2099-0001", "severity": "CRITICAL", "package": "zlib1g",
        "installed_version": "1.2.3", "fixed_version": "1.2.4", "status": "fixed", "kind": "ubuntu",
        "path": "", "purl": "pkg:deb/ubuntu/zlib1g@1.2.3", "title": NASTY_TITLE}
    assert doc["secrets"]["count"] == 1 and doc["secrets"]["by_severity"]["CRITICAL"] == 1
    assert doc["misconfigurations"]["by_severity"] == {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 0,
                                                       "LOW": 0, "UNKNOWN": 0}
    assert doc["hadolint"] == {
        "status": "ok", "count": 2, "by_level": {"error": 0, "warning": 1, "info": 1, "style": 0},
        "unjustified_ignores": [], "findings": [
            {"code": "DL3008", "level": "warning", "message": "Pin versions | in apt get install",
             "dockerfile": "build/svc/Dockerfile.dev", "line": 7},
            {"code": "DL3059", "level": "info", "message": "Multiple consecutive `RUN`",
             "dockerfile": "build/svc/Dockerfile.dev", "line": 9}]}


def test_scan_json_gate_lists_violations_and_what_the_allow_list_allowed() -> None:
    allowed = IgnoreEntry("vulnerabilities", "CVE-2099-0003", "libc fix ships next week",
                          date(2026, 7, 1), (), (), ".trivyignore.yaml:3")
    expired = replace(allowed, id="CVE-2099-0001", expired_at=date(2026, 1, 1))
    doc = document(result(everything_found().findings, ignores=(allowed, expired)))
    gate = doc["gate"]
    assert gate["passed"] is False and gate["enforcing"] is True and gate["variant"] == "prod"
    assert gate["policy"] == {"fail_on_severity": ["CRITICAL", "HIGH"], "only_fixed": True,
                              "fail_on_secrets": True, "fail_on_misconfig_severity": ["CRITICAL", "HIGH"]}
    # CRITICAL without a fix does not gate prod (only_fixed), HIGH libc6 is allowed until July.
    assert [(v["scanner"], v["id"]) for v in gate["violations"]] == [
        ("secret", "aws-access-key-id"), ("vulnerability", "CVE-2099-0001"),
        ("misconfiguration", "DS-0002")]
    assert gate["allowed"] == [{"scanner": "vulnerability", "id": "CVE-2099-0003",
                                "where": "libc6@1.2.3", "statement": "libc fix ships next week",
                                "expires": "2026-07-01", "source": ".trivyignore.yaml:3"}]
    assert doc["vulnerabilities"]["allowed"] == 1 and doc["secrets"]["allowed"] == 0
    assert gate["problems"] == [".trivyignore.yaml:3: CVE-2099-0001 expired on 2026-01-01: not honoured"]


def test_scan_json_never_reports_a_scanner_that_did_not_run_as_zero_findings() -> None:
    doc = document(result(not_run()))
    assert doc["vulnerabilities"] == {"status": "not-run", "reason": NO_DB}
    assert doc["secrets"]["status"] == "ok" and doc["secrets"]["count"] == 0
    assert doc["gate"]["not_run"] == [f"vulnerabilities: {NO_DB}"]
    assert doc["gate"]["passed"] is True


def test_scan_json_of_a_dockerfile_without_an_image() -> None:
    why = "image svc:prod-alpine is not built on this machine (make build-prod FLAVOR=alpine)"
    findings = Findings(Outcome(not_run=why), Outcome(not_run=why), Outcome((MISCONFIG,)))
    doc = document(result(findings, scan_target=target("prod-alpine", "", why)))
    assert doc["image"] is None and doc["image_missing"] == why
    assert doc["flavor"] == "alpine"
    assert doc["vulnerabilities"] == doc["secrets"] == {"status": "not-run", "reason": why}
    assert doc["sbom"] == {"status": "not-run", "reason": why}
    assert doc["misconfigurations"]["count"] == 1


# ---- a target's summary.md ------------------------------------------------------------------------

def test_summary_counts_each_scanner_by_severity() -> None:
    rows = {row[0]: row[1:] for row in table_rows(summary_markdown(everything_found()))}
    assert rows["Scanner"] == [*reversed(SEVERITIES), "Total"]
    assert rows["Vulnerabilities"] == ["2", "1", "0", "1", "1", "5"]
    assert rows["Secrets"] == ["1", "0", "0", "0", "0", "1"]
    assert rows["Misconfigurations"] == ["0", "1", "0", "0", "0", "1"]


def test_summary_keeps_every_table_row_whole_whatever_the_titles_contain() -> None:
    hostile = replace(SECRET, rule_id="custom|rule", title="line one\r\nline | two")
    scan = result(Findings(Outcome(VULNS), Outcome((hostile,)), Outcome((MISCONFIG,))))
    text = summary_markdown(scan)
    for table in tables(text):
        widths = {len(row) for row in table}
        assert len(widths) == 1, table  # every row has as many cells as the header
    # Pipes are escaped, line breaks become spaces: the title stays in its one cell.
    assert "zlib: heap overflow \\| in inflate when windowBits=8" in text
    assert "| custom\\|rule | secret | CRITICAL |" in text
    assert "(line one  line \\| two)" in text
    assert "Image user should not be 'root' — Add 'USER <non root user name>' \\| to the Dockerfile" in text
    assert "line 7: Pin versions \\| in apt get install" in text
    assert NASTY_TITLE not in text and "\r" not in text


def test_summary_ranks_the_top_vulnerabilities_severe_and_fixable_first() -> None:
    many = tuple(vuln(f"CVE-2099-{n:04d}", "MEDIUM") for n in range(20, 28)) + VULNS
    text = summary_markdown(result(Findings(Outcome(many), Outcome(), Outcome())))
    assert "## Top vulnerabilities (10 of 13)" in text
    section = text.split("## Top vulnerabilities")[1]
    listed = [row[0] for row in table_rows(section)[2:]]
    assert listed[:3] == ["CVE-2099-0001", "CVE-2099-0002", "CVE-2099-0003"]  # fixable CRITICAL first
    assert len(listed) == 10 and "CVE-2099-0004" not in listed and "CVE-2099-0005" not in listed
    assert "| CVE-2099-0002 | CRITICAL | zlib1g | 1.2.3 | — |" in section  # no fix: a dash


def test_summary_says_which_scanner_did_not_run_and_why() -> None:
    text = summary_markdown(result(not_run(), policy=DEV))
    assert "| Vulnerabilities | — | — | — | — | — | **not run** |" in text
    assert "| Secrets | 0 | 0 | 0 | 0 | 0 | 0 |" in text
    assert f"- vulnerabilities: {NO_DB}" in text
    assert "does not fail the gate by itself" in text
    assert "## Top vulnerabilities" not in text


def test_summary_of_a_dockerfile_without_an_image() -> None:
    why = "image svc:prod-alpine is not built on this machine (make build-prod FLAVOR=alpine)"
    findings = Findings(Outcome(not_run=why), Outcome(not_run=why), Outcome(()))
    text = summary_markdown(result(findings, scan_target=target("prod-alpine", "", why)))
    assert f"- Image: not scanned: {why}" in text
    assert f"SBOM: not run ({why})" in text
    assert "- Variant: prod, flavor: alpine" in text


def test_summary_gate_allowed_and_problems() -> None:
    allowed = IgnoreEntry("secrets", "aws-access-key-id", "rotated | revoked\nin May",
                          date(2026, 7, 1), (), (), ".trivyignore.yaml:5")
    undated = replace(allowed, id="CVE-2099-0009", section="vulnerabilities", expired_at=None)
    findings = Findings(Outcome(()), Outcome((SECRET,)), Outcome(()))
    text = summary_markdown(result(findings, ignores=(allowed, undated), unjustified=(12, 30)))
    assert "- **Gate: PASS** — no finding breaks the policy; 1 finding(s) allowed by the allow-list" in text
    assert ("- secret aws-access-key-id at /app/config/aws.env:1 until 2026-07-01: "
            "rotated \\| revoked in May (.trivyignore.yaml:5)") in text
    assert "- .trivyignore.yaml:5: CVE-2099-0009 has no expired_at: not honoured" in text
    assert "at line(s) 12, 30." in text


def test_summary_lists_at_most_fifty_violations() -> None:
    many = tuple(vuln(f"CVE-2099-{n:04d}", "HIGH") for n in range(60))
    text = summary_markdown(result(Findings(Outcome(many), Outcome(), Outcome())))
    section = text.split("| Violation |")[1].split("\n\n")[0]
    assert len(table_rows(section)) == 1 + 50  # the separator row, then 50 violations
    assert "…and 10 more (see scan.json)." in text


# ---- the gate's words -----------------------------------------------------------------------------

def test_gate_words() -> None:
    failing = everything_found().verdict
    assert gate_word(failing) == "FAIL"
    assert gate_reason(failing) == "policy violated by 1 secret, 2 vulnerabilities, 1 misconfiguration"
    singular = evaluate(PROD, Findings(Outcome(VULNS[3:4]), Outcome(()),
                                       Outcome((MISCONFIG, replace(MISCONFIG, id="DS-0001")))),
                        (), TODAY)
    assert gate_reason(singular) == "policy violated by 2 misconfigurations, 1 vulnerability"
    report_only = everything_found().findings
    dev = evaluate(DEV, report_only, (), TODAY)
    assert gate_word(dev) == "REPORT ONLY"
    assert gate_reason(dev) == "this variant's policy never fails (findings are reported only)"
    assert policy_text(dev) == "report only"
    clean = evaluate(PROD, not_run(), (), TODAY)
    assert gate_word(clean) == "PASS"
    assert gate_reason(clean) == "no finding breaks the policy; vulnerabilities not run"
    assert policy_text(clean) == ("fail on CRITICAL/HIGH vulnerabilities that have a fix; "
                                  "fail on any secret; fail on CRITICAL/HIGH misconfigurations")


def test_policy_text_without_only_fixed() -> None:
    policy = GatePolicy(("CRITICAL",), False, False, ())
    verdict = evaluate(policy, not_run(), (), TODAY)
    assert policy_text(verdict) == "fail on CRITICAL vulnerabilities"


# ---- reports/summary.md ---------------------------------------------------------------------------

def test_overall_summary_has_a_row_per_target_and_the_verdict() -> None:
    why = "image svc:prod-alpine is not built on this machine (make build-prod FLAVOR=alpine)"
    results = [
        everything_found(),
        result(not_run(), scan_target=target("dev", "svc:dev"), policy=DEV,
               sbom=None),
        result(Findings(Outcome(not_run=why), Outcome(not_run=why), Outcome(())),
               scan_target=target("prod-alpine", "", why), hadolint=()),
    ]
    text = overall_markdown(results, DB.detail)
    assert text.startswith("# imagewright scan\n\n**FAIL**: 3 target(s) scanned, 1 failing the gate. "
                           f"Vulnerability DB: {DB.detail}.")
    rows = table_rows(text)
    assert rows[0] == ["Target", "Gate", "Vulnerabilities (C/H/M/L)", "Fixable", "Secrets",
                       "Misconfig", "hadolint", "SBOM packages"]
    assert rows[2:] == [
        ["svc prod `svc:prod`", "FAIL", "2/1/0/1", "3", "1", "1", "2", "42"],
        ["svc dev `svc:dev`", "REPORT ONLY", "not run", "—", "0", "0", "2", "not run"],
        ["svc prod-alpine (Dockerfile only)", "PASS", "not run", "—", "not run", "0", "0", "not run"],
    ]
    notes = [line for line in text.splitlines() if line.startswith("- ")]
    # Why the gate failed; a missing scanner once for the images it concerns (the Dockerfile-only
    # target says so in its row already).
    assert notes == ["- svc prod: policy violated by 1 secret, 2 vulnerabilities, 1 misconfiguration",
                     f"- not run for svc dev: vulnerabilities: {NO_DB}"]


def test_overall_summary_passes_and_groups_the_same_reason() -> None:
    problem = IgnoreEntry("vulnerabilities", "CVE-1", "", date(2027, 1, 1), (), (), "a|b.yaml:2")
    results = [result(not_run(), ignores=(problem,)),
               result(not_run(), scan_target=target("dev", "svc:dev"), policy=DEV)]
    text = overall_markdown(results, "from trivy-db.tar.gz")
    assert "**PASS**: 2 target(s) scanned, 0 failing the gate." in text
    assert f"- not run for svc prod, svc dev: vulnerabilities: {NO_DB}" in text
    assert ("- svc prod: allow-list problem: a\\|b.yaml:2: CVE-1 has no statement: not honoured"
            in text)
    assert "*not run*" in text


@pytest.mark.parametrize("label", ["prod", "dev"])
def test_a_report_never_shows_a_not_run_scanner_as_a_count(label: str) -> None:
    scan = result(not_run(), scan_target=target(label, f"svc:{label}"))
    row = next(row for row in table_rows(overall_markdown([scan], "x")) if row[0].startswith("svc"))
    assert row[2:4] == ["not run", "—"]


# ---- writing the files ----------------------------------------------------------------------------

def test_a_targets_reports_are_written_and_an_earlier_scans_leftovers_removed(tmp_path: Path) -> None:
    why = "image svc:prod-alpine is not built on this machine (make build-prod FLAVOR=alpine)"
    alpine = target("prod-alpine", "", why)
    folder = tmp_path / "svc" / "prod-alpine"
    folder.mkdir(parents=True)
    # The image existed at the last scan; now only its Dockerfile does.
    for name in ("trivy.json", "sbom.cdx.json", "scan.json", "notes.txt"):
        (folder / name).write_text("from the last scan\n")
    scanned = result(Findings(Outcome(not_run=why), Outcome(not_run=why), Outcome((MISCONFIG,))),
                     scan_target=alpine, reports_dir=tmp_path)
    write_target_reports(scanned)
    assert sorted(p.name for p in folder.iterdir()) == [
        "hadolint.json", "notes.txt", "scan.json", "summary.md", "trivy-config.json", "trivy.sarif"]
    for name, data in tool_outputs(image=False).items():
        assert (folder / name).read_bytes() == data
    assert (folder / "scan.json").read_text() == scan_json(scanned)
    assert (folder / "summary.md").read_text() == summary_markdown(scanned)
    assert json.loads((folder / "scan.json").read_text())["files"] == [
        "trivy-config.json", "trivy.sarif", "hadolint.json", "scan.json", "summary.md"]


def test_the_overall_summary_is_written_at_the_top(tmp_path: Path) -> None:
    results = [result(not_run(), reports_dir=tmp_path)]
    path = write_overall_summary(results, DB.detail, tmp_path)
    assert path == tmp_path / "summary.md"
    assert path.read_text() == overall_markdown(results, DB.detail)
