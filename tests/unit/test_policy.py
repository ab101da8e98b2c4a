"""The scan gate as a pure function: thresholds, only-fixed, secrets, misconfigurations, the
allow-list's house rules (statement + expiry), and the `policy:` section of image.yaml."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from builder.core.errors import SpecError
from builder.inspect import checks
from builder.inspect.checks import CheckResult
from builder.inspect.surface import AttackSurface
from builder.report.scan import gate_reason, gate_word, policy_text
from builder.scan.policy import IgnoreEntry, Violation, dump_ignores, evaluate, load_ignores
from builder.scan.trivy import Findings, Misconfiguration, Outcome, Secret, Vulnerability
from builder.spec.catalog import load_catalog
from builder.spec.service import DEFAULT_POLICY, GatePolicy, load_spec
from tests.support.samples import FLAVORS

TODAY = date(2026, 6, 1)
PROD = DEFAULT_POLICY.prod
DEV = DEFAULT_POLICY.dev
ROOT = Path(__file__).resolve().parents[2]


def vuln(id: str = "CVE-2099-0001", severity: str = "HIGH", fixed: str = "1.2.4",
         package: str = "zlib1g", path: str = "", purl: str = "") -> Vulnerability:
    return Vulnerability(id=id, severity=severity, package=package, installed_version="1.2.3",
                         fixed_version=fixed, status="fixed" if fixed else "affected",
                         kind="ubuntu", path=path,
                         purl=purl or f"pkg:deb/ubuntu/{package}@1.2.3?arch=amd64",
                         title="fixture")


def secret(rule: str = "aws-access-key-id", severity: str = "CRITICAL",
           path: str = "/app/config/aws.env") -> Secret:
    return Secret(rule_id=rule, category="AWS", severity=severity, title="AWS Access Key ID",
                  path=path, line=1, layer="sha256:abc", match="AWS_ACCESS_KEY_ID=****")


def misconfig(id: str = "DS-0002", severity: str = "HIGH") -> Misconfiguration:
    return Misconfiguration(id=id, severity=severity, title="root user", message="m",
                            dockerfile="build/svc/Dockerfile.prod-distroless", line=0,
                            resolution="add USER", url="")


def findings(vulns: tuple[Vulnerability, ...] = (), secrets: tuple[Secret, ...] = (),
             misconfigs: tuple[Misconfiguration, ...] = (), *, vulns_not_run: str = ""
             ) -> Findings:
    return Findings(Outcome(not_run=vulns_not_run) if vulns_not_run else Outcome(vulns),
                    Outcome(secrets), Outcome(misconfigs))


def entry(id: str, section: str = "vulnerabilities", statement: str = "accepted: no exploit path",
          expires: date | None = date(2027, 1, 1), paths: tuple[str, ...] = (),
          purls: tuple[str, ...] = ()) -> IgnoreEntry:
    return IgnoreEntry(section, id, statement, expires, paths, purls, ".trivyignore.yaml:2")


# ---- severity thresholds and only-fixed -----------------------------------------------------------

@pytest.mark.parametrize(("severity", "fails"), [
    ("CRITICAL", True), ("HIGH", True), ("MEDIUM", False), ("LOW", False), ("UNKNOWN", False)])
def test_prod_fails_on_fixable_critical_and_high_only(severity: str, fails: bool) -> None:
    verdict = evaluate(PROD, findings((vuln(severity=severity),)), (), TODAY)
    assert verdict.passed is not fails
    assert [v.id for v in verdict.violations] == (["CVE-2099-0001"] if fails else [])


def test_a_custom_threshold_moves_the_line() -> None:
    critical_only = GatePolicy(("CRITICAL",), True, True, ("CRITICAL", "HIGH"))
    assert evaluate(critical_only, findings((vuln(severity="HIGH"),)), (), TODAY).passed
    assert not evaluate(critical_only, findings((vuln(severity="CRITICAL"),)), (), TODAY).passed
    with_medium = GatePolicy(("CRITICAL", "HIGH", "MEDIUM"), True, True, ())
    assert not evaluate(with_medium, findings((vuln(severity="MEDIUM"),)), (), TODAY).passed


def test_only_fixed_lets_unfixed_vulnerabilities_through() -> None:
    unfixed = findings((vuln(severity="CRITICAL", fixed=""),))
    assert evaluate(PROD, unfixed, (), TODAY).passed
    strict = GatePolicy(("CRITICAL", "HIGH"), False, True, ())
    verdict = evaluate(strict, unfixed, (), TODAY)
    assert not verdict.passed
    assert verdict.violations[0].detail == "no fix (affected)"


def test_violations_are_ordered_most_severe_first() -> None:
    verdict = evaluate(PROD, findings((vuln("CVE-A", "HIGH"), vuln("CVE-B", "CRITICAL")),
                                      (secret(severity="LOW"),)), (), TODAY)
    assert [v.id for v in verdict.violations] == ["CVE-B", "CVE-A", "aws-access-key-id"]


# ---- secrets and misconfigurations ----------------------------------------------------------------

def test_prod_fails_on_any_secret_whatever_its_severity() -> None:
    verdict = evaluate(PROD, findings(secrets=(secret(severity="LOW"),)), (), TODAY)
    assert not verdict.passed
    assert verdict.violations[0].where == "/app/config/aws.env:1"
    relaxed = GatePolicy(("CRITICAL", "HIGH"), True, False, ())
    assert evaluate(relaxed, findings(secrets=(secret(),)), (), TODAY).passed


def test_prod_fails_on_high_misconfigurations_not_medium() -> None:
    assert not evaluate(PROD, findings(misconfigs=(misconfig(severity="HIGH"),)), (), TODAY).passed
    assert evaluate(PROD, findings(misconfigs=(misconfig(severity="MEDIUM"),)), (), TODAY).passed


def test_dev_never_fails_by_default() -> None:
    everything = findings((vuln(severity="CRITICAL"), vuln("CVE-2", "HIGH", fixed="")),
                          (secret(),), (misconfig(severity="CRITICAL"),))
    verdict = evaluate(DEV, everything, (), TODAY)
    assert verdict.passed and not verdict.policy.enforcing
    assert verdict.violations == ()


def test_a_scanner_that_did_not_run_does_not_decide_the_gate() -> None:
    verdict = evaluate(PROD, findings(vulns_not_run="no Trivy DB"), (), TODAY)
    assert verdict.passed
    assert verdict.not_run == ("vulnerabilities: no Trivy DB",)
    # …and the scanners that did run still gate.
    failing = evaluate(PROD, findings(secrets=(secret(),), vulns_not_run="no DB"), (), TODAY)
    assert not failing.passed and failing.not_run


# ---- promises -------------------------------------------------------------------------------------

def promise_checks(**changes: object) -> tuple[CheckResult, ...]:
    """The real distroless promises, checked on a clean surface with `changes` applied."""
    surface = AttackSurface(image="svc:prod", user="65532:65532", runs_as_root=False, shells=(),
                            package_managers=(), compilers=(), pip_module=False, setuid_files=(),
                            world_writable=(), package_caches=(), exposed_ports=())
    promised = load_catalog(ROOT / "templates").flavors["distroless"].promises
    return tuple(checks.evaluate(promised, replace(surface, **changes),  # type: ignore[arg-type]
                                 {"User": "65532:65532"}))


def test_a_broken_promise_fails_the_prod_gate_by_its_id() -> None:
    verdict = evaluate(PROD, findings(), (), TODAY, promise_checks(shells=("/bin/sh",)))
    assert not verdict.passed
    assert verdict.violations == (Violation("promise", "IW-SHELL-001", "HIGH", "shell",
                                            "promised no, found yes (/bin/sh)"),)
    assert gate_reason(verdict) == "policy violated by 1 broken promise"
    assert len(verdict.promises) == 9


def test_kept_promises_gate_even_a_report_only_policy() -> None:
    kept = promise_checks()
    verdict = evaluate(DEV, findings(secrets=(secret(),)), (), TODAY, kept)
    assert verdict.passed and verdict.enforcing and gate_word(verdict) == "PASS"
    assert policy_text(verdict) == "fail on a broken promise of the flavor"
    assert not evaluate(DEV, findings(), (), TODAY, promise_checks(pip_module=True)).passed
    assert gate_word(evaluate(DEV, findings(), (), TODAY)) == "REPORT ONLY"


def test_no_allow_list_entry_allows_a_broken_promise() -> None:
    broken = promise_checks(runs_as_root=True, user="0")
    entries = tuple(entry(check_id, section) for check_id in ("IW-USER-001", "IW-USER-002")
                    for section in ("vulnerabilities", "secrets", "misconfigurations"))
    verdict = evaluate(PROD, findings(), entries, TODAY, broken)
    assert [v.id for v in verdict.violations] == ["IW-USER-001"]  # config says 65532: uid kept
    assert verdict.allowed == ()


# ---- the allow-list -------------------------------------------------------------------------------

def test_a_valid_entry_allows_and_is_reported() -> None:
    verdict = evaluate(PROD, findings((vuln(),)), (entry("CVE-2099-0001"),), TODAY)
    assert verdict.passed and verdict.problems == ()
    (allowed,) = verdict.allowed
    assert (allowed.id, allowed.statement, allowed.expires) == (
        "CVE-2099-0001", "accepted: no exploit path", date(2027, 1, 1))


def test_an_expired_entry_stops_allowing_and_is_a_problem() -> None:
    expired = entry("CVE-2099-0001", expires=date(2026, 5, 31))
    verdict = evaluate(PROD, findings((vuln(),)), (expired,), TODAY)
    assert not verdict.passed and verdict.allowed == ()
    assert "expired on 2026-05-31" in verdict.problems[0]
    # The expiry day itself is still covered.
    assert evaluate(PROD, findings((vuln(),)), (entry("CVE-2099-0001", expires=TODAY),),
                    TODAY).passed


@pytest.mark.parametrize(("statement", "expires", "missing"), [
    ("", date(2027, 1, 1), "statement"), ("reason", None, "expired_at"),
    ("", None, "statement and no expired_at")])
def test_an_entry_without_reason_or_expiry_allows_nothing(statement: str, expires: date | None,
                                                          missing: str) -> None:
    incomplete = entry("CVE-2099-0001", statement=statement, expires=expires)
    verdict = evaluate(PROD, findings((vuln(),)), (incomplete,), TODAY)
    assert not verdict.passed
    assert f"has no {missing}" in verdict.problems[0]


def test_entries_match_by_section_id_path_and_purl() -> None:
    sec = secret(path="/app/config/aws.env")
    for pattern, allowed in (("/app/config/*", True), ("**/aws.env", True), ("/app/*", False),
                             ("app/config/aws.env", False), ("/etc/*", False)):
        # The same answers Trivy 0.76 gives for these globs on this path.
        verdict = evaluate(PROD, findings(secrets=(sec,)),
                           (entry("aws-access-key-id", "secrets", paths=(pattern,)),), TODAY)
        assert verdict.passed is allowed, pattern
    # An ID in the wrong section allows nothing.
    assert not evaluate(PROD, findings(secrets=(sec,)), (entry("aws-access-key-id"),),
                        TODAY).passed
    pip = vuln("GHSA-x", purl="pkg:pypi/gunicorn@23.0.0", package="gunicorn")
    assert evaluate(PROD, findings((pip,)), (entry("GHSA-x", purls=("pkg:pypi/gunicorn",)),),
                    TODAY).passed
    assert not evaluate(PROD, findings((pip,)), (entry("GHSA-x", purls=("pkg:pypi/flask",)),),
                        TODAY).passed


@pytest.mark.parametrize("alias", ["DS-0002", "DS002", "AVD-DS-0002", "ds-0002"])
def test_misconfiguration_ids_match_in_every_spelling_trivy_accepts(alias: str) -> None:
    verdict = evaluate(PROD, findings(misconfigs=(misconfig("DS-0002"),)),
                       (entry(alias, "misconfigurations"),), TODAY)
    assert verdict.passed and len(verdict.allowed) == 1


def test_the_ignore_file_round_trips_and_names_lines(tmp_path: Path) -> None:
    path = tmp_path / ".trivyignore.yaml"
    path.write_text("vulnerabilities:\n"
                    "  - id: CVE-2099-0001\n"
                    "    statement: fixed upstream next release\n"
                    "    expired_at: 2027-01-01\n"
                    "    purls: [pkg:deb/ubuntu/zlib1g]\n"
                    "secrets:\n"
                    "  - id: aws-access-key-id\n"
                    "    expired_at: \"2026-12-31\"\n")
    cve, aws = load_ignores(path, "x/.trivyignore.yaml")
    assert (cve.section, cve.expired_at, cve.purls) == (
        "vulnerabilities", date(2027, 1, 1), ("pkg:deb/ubuntu/zlib1g",))
    assert (aws.statement, aws.expired_at, aws.source) == ("", date(2026, 12, 31),
                                                           "x/.trivyignore.yaml:7")
    path.write_text(dump_ignores((cve, aws)))
    assert [replace(e, source="") for e in load_ignores(path, "again")] == [
        replace(cve, source=""), replace(aws, source="")]


@pytest.mark.parametrize(("text", "message"), [
    ("vulnerabilites:\n  - id: CVE-1\n", "x.yaml:1: vulnerabilites: unknown key (did you mean "
                                         "'vulnerabilities'?)"),
    ("secrets:\n  - statement: s\n", "x.yaml:2: secrets[0]: missing id"),
    ("secrets:\n  - id: a\n    expires: 2027-01-01\n", "x.yaml:3: secrets[0].expires: unknown key"),
    ("secrets:\n  - id: a\n    expired_at: next year\n", "x.yaml:3: secrets[0].expired_at: "
                                                          "'next year' is not a date"),
])
def test_a_malformed_ignore_file_is_one_line_naming_file_and_line(tmp_path: Path, text: str,
                                                                   message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_ignores(path, "x.yaml")
    assert caught.value.message.startswith(message)
    assert "\n" not in caught.value.message


# ---- policy: in image.yaml ------------------------------------------------------------------------

@pytest.fixture()
def service_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "backend-flask"
    shutil.copytree(ROOT / "images" / "backend-flask", folder)
    return folder


def test_image_yaml_policy_overrides_only_what_it_names(service_dir: Path) -> None:
    spec = service_dir / "image.yaml"
    spec.write_text(spec.read_text() + "policy:\n  prod:\n    fail_on_severity: [critical]\n"
                                       "  dev:\n    fail_on_secrets: true\n")
    policy = load_spec(service_dir, FLAVORS).policy
    assert policy.prod == GatePolicy(("CRITICAL",), True, True, ("CRITICAL", "HIGH"))
    assert policy.dev == GatePolicy((), True, True, ())
    assert load_spec(ROOT / "images" / "backend-flask", FLAVORS).policy \
        == DEFAULT_POLICY


@pytest.mark.parametrize(("text", "message"), [
    ("policy:\n  prod:\n    fail_on_severity: [SEVERE]\n",
     "policy.prod.fail_on_severity[0]: 'SEVERE' is not one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL"),
    ("policy:\n  prod:\n    only_fixed: sometimes\n",
     "policy.prod.only_fixed: expected true or false, got a string"),
    ("policy:\n  staging: {}\n", "policy.staging: unknown key"),
])
def test_a_bad_policy_is_one_spec_error(service_dir: Path, text: str, message: str) -> None:
    spec = service_dir / "image.yaml"
    spec.write_text(spec.read_text() + text)
    with pytest.raises(SpecError) as caught:
        load_spec(service_dir, ("alpine", "distroless"))
    assert message in caught.value.message
    assert caught.value.line is not None
