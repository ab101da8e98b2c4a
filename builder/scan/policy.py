"""The scan gate: findings + allow-list + a variant's policy → a verdict. `evaluate` is pure.

The allow-list is Trivy's own `.trivyignore.yaml` format, with two house rules on top: an entry
must say why (`statement`) and until when (`expired_at`). An entry missing either, or past its
date, allows nothing and is reported as a problem — so an exception can never become permanent
by accident.

A prod image is also held to its flavor's promises (templates/catalog.yaml, checked by
builder/inspect/checks.py): a broken one is a violation no allow-list entry can allow — change the
catalog or the image instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from builder.core.yamlfile import KeyPath, YamlDocument, load_yaml
from builder.inspect.checks import CheckResult
from builder.scan.trivy import Findings, Misconfiguration, Secret, Vulnerability
from builder.spec.service import SEVERITIES, GatePolicy

IGNORE_FILENAME = ".trivyignore.yaml"
# Trivy's sections; licenses are accepted for compatibility but imagewright scans none.
_SECTIONS = ("vulnerabilities", "secrets", "misconfigurations", "licenses")
_ENTRY_KEYS = ("id", "statement", "expired_at", "paths", "purls")
_CHECK_ID = re.compile(r"^(?:AVD-)?([A-Z]+)-?0*(\d+)$")
# A broken promise (a shell in a shell-less flavor, root, …) ranks with the gate's HIGH findings.
PROMISE_SEVERITY = "HIGH"


@dataclass(frozen=True)
class IgnoreEntry:
    section: str  # vulnerabilities | secrets | misconfigurations | licenses
    id: str
    statement: str
    expired_at: date | None
    paths: tuple[str, ...]
    purls: tuple[str, ...]
    source: str  # file:line, for people

    def problem(self, today: date) -> str:
        """Why this entry allows nothing, or "" when it is honoured."""
        missing = [key for key, value in (("statement", self.statement),
                                          ("expired_at", self.expired_at)) if not value]
        if missing:
            return f"{self.source}: {self.id} has no {' and no '.join(missing)}: not honoured"
        if self.expired_at is not None and self.expired_at < today:
            return f"{self.source}: {self.id} expired on {self.expired_at:%Y-%m-%d}: not honoured"
        return ""


@dataclass(frozen=True)
class Violation:
    scanner: str  # vulnerability | secret | misconfiguration | promise
    id: str
    severity: str
    where: str  # package@version, file:line
    detail: str  # fixed version, title or check message


@dataclass(frozen=True)
class Allowance:
    scanner: str
    id: str
    where: str
    statement: str
    expires: date
    source: str


@dataclass(frozen=True)
class Verdict:
    policy: GatePolicy
    passed: bool
    violations: tuple[Violation, ...]
    allowed: tuple[Allowance, ...]
    problems: tuple[str, ...]  # allow-list entries that are not honoured, and why
    not_run: tuple[str, ...]  # "vulnerabilities: <reason>": never counted as a pass or a fail
    promises: tuple[CheckResult, ...] = ()  # a prod image's promise checks, each one gating

    @property
    def enforcing(self) -> bool:
        return self.policy.enforcing or bool(self.promises)


# ---- the allow-list file --------------------------------------------------------------------------

def load_ignores(path: Path, display: str) -> tuple[IgnoreEntry, ...]:
    """Entries of one `.trivyignore.yaml`; a malformed file is a SpecError naming file and line."""
    doc = load_yaml(path, display)
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a mapping with vulnerabilities:, secrets: or "
                            "misconfigurations:")
    entries: list[IgnoreEntry] = []
    for section, items in doc.data.items():
        if section not in _SECTIONS:
            raise doc.error((section,), _unknown(section, _SECTIONS))
        if items is None:
            continue
        if not isinstance(items, list):
            raise doc.error((section,), "expected a list of entries")
        entries.extend(_entry(doc, section, index, item) for index, item in enumerate(items))
    return tuple(entries)


def _entry(doc: YamlDocument, section: str, index: int, item: Any) -> IgnoreEntry:
    path: KeyPath = (section, index)
    if not isinstance(item, dict):
        raise doc.error(path, "expected a mapping with id:, statement: and expired_at:")
    for key in item:
        if key not in _ENTRY_KEYS:
            raise doc.error((*path, key), _unknown(key, _ENTRY_KEYS))
    if not isinstance(item.get("id"), str) or not item["id"].strip():
        raise doc.error(path, "missing id")
    statement = item.get("statement")
    if statement is not None and not isinstance(statement, str):
        raise doc.error((*path, "statement"), "expected a string")
    return IgnoreEntry(
        section=section,
        id=item["id"].strip(),
        statement=(statement or "").strip(),
        expired_at=_date(doc, (*path, "expired_at"), item.get("expired_at")),
        paths=_strings(doc, (*path, "paths"), item.get("paths")),
        purls=_strings(doc, (*path, "purls"), item.get("purls")),
        source=f"{doc.file}:{doc.lines.get(path, 0)}",
    )


def _date(doc: YamlDocument, path: KeyPath, value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise doc.error(path, f"{value!r} is not a date (YYYY-MM-DD)")


def _strings(doc: YamlDocument, path: KeyPath, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise doc.error(path, "expected a list of strings")
    return tuple(value)


def _unknown(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "") + \
        f"; known: {', '.join(known)}"


def dump_ignores(entries: Iterable[IgnoreEntry]) -> str:
    """The entries as a `.trivyignore.yaml` Trivy reads (to mark allowed findings as suppressed)."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        item: dict[str, Any] = {"id": entry.id, "statement": entry.statement}
        if entry.expired_at is not None:
            # A YAML date, not a string: Trivy parses a quoted value as a full RFC 3339 timestamp.
            item["expired_at"] = entry.expired_at
        if entry.paths:
            item["paths"] = list(entry.paths)
        if entry.purls:
            item["purls"] = list(entry.purls)
        sections.setdefault(entry.section, []).append(item)
    return yaml.safe_dump(sections, sort_keys=False) if sections else "{}\n"


def honoured(entries: Iterable[IgnoreEntry], today: date) -> tuple[IgnoreEntry, ...]:
    return tuple(entry for entry in entries if not entry.problem(today))


# ---- the gate -------------------------------------------------------------------------------------

def evaluate(policy: GatePolicy, findings: Findings, ignores: Sequence[IgnoreEntry],
             today: date, promises: Sequence[CheckResult] = ()) -> Verdict:
    """Which findings break `policy` once honoured allow-list entries are taken out; every
    broken promise in `promises` breaks it too."""
    valid = honoured(ignores, today)
    violations: list[Violation] = []
    allowed: list[Allowance] = []

    def consider(section: str, finding: Vulnerability | Secret | Misconfiguration,
                 candidate: Violation, breaks: bool) -> None:
        entry = next((e for e in valid
                      if e.section == section and _matches(e, candidate.id, finding)), None)
        if entry is not None:
            assert entry.expired_at is not None  # honoured entries always carry a date
            allowed.append(Allowance(candidate.scanner, candidate.id, candidate.where,
                                     entry.statement, entry.expired_at, entry.source))
        elif breaks:
            violations.append(candidate)

    for vuln in findings.vulnerabilities.items:
        detail = f"fixed in {vuln.fixed_version}" if vuln.fixable else f"no fix ({vuln.status})"
        consider("vulnerabilities", vuln,
                 Violation("vulnerability", vuln.id, vuln.severity,
                           f"{vuln.package}@{vuln.installed_version}", detail),
                 vuln.severity in policy.fail_on_severity
                 and (vuln.fixable or not policy.only_fixed))
    for secret in findings.secrets.items:
        consider("secrets", secret,
                 Violation("secret", secret.rule_id, secret.severity,
                           f"{secret.path}:{secret.line}", secret.title),
                 policy.fail_on_secrets)
    for check in findings.misconfigurations.items:
        where = f"{check.dockerfile}:{check.line}" if check.line else check.dockerfile
        consider("misconfigurations", check,
                 Violation("misconfiguration", check.id, check.severity, where, check.title),
                 check.severity in policy.fail_on_misconfig_severity)

    violations.extend(Violation("promise", result.id, PROMISE_SEVERITY, result.promise,
                                result.detail) for result in promises if not result.passed)
    not_run = tuple(f"{name}: {outcome.not_run}" for name, outcome in (
        ("vulnerabilities", findings.vulnerabilities), ("secrets", findings.secrets),
        ("misconfigurations", findings.misconfigurations)) if not outcome.ran)
    violations.sort(key=lambda v: (-severity_rank(v.severity), v.scanner, v.id, v.where))
    return Verdict(
        policy=policy,
        passed=not violations,
        violations=tuple(violations),
        allowed=tuple(allowed),
        problems=tuple(problem for entry in ignores if (problem := entry.problem(today))),
        not_run=not_run,
        promises=tuple(promises),
    )


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def _matches(entry: IgnoreEntry, key: str, finding: Vulnerability | Secret | Misconfiguration
             ) -> bool:
    if isinstance(finding, Misconfiguration):
        same, path, purl = _check_id(entry.id) == _check_id(key), finding.dockerfile, ""
    elif isinstance(finding, Secret):
        same, path, purl = entry.id == key, finding.path, ""
    else:
        same, path, purl = entry.id == key, finding.path, finding.purl
    if not same:
        return False
    if entry.paths and not any(_glob(pattern).fullmatch(path) for pattern in entry.paths):
        return False
    return not entry.purls or any(_purl_matches(pattern, purl) for pattern in entry.purls)


def _glob(pattern: str) -> re.Pattern[str]:
    """Trivy's path globs: `*` stays within one folder, `**` crosses folders; paths are as Trivy
    reports them (`/app/x.env` for a secret in an image, `opt/venv/…/METADATA` for a package)."""
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def _check_id(value: str) -> str:
    """DS-0002, DS002 and AVD-DS-0002 name the same check (Trivy accepts all three)."""
    match = _CHECK_ID.match(value.strip().upper())
    return f"{match[1]}-{int(match[2]):04d}" if match else value.strip().upper()


def _purl_matches(pattern: str, purl: str) -> bool:
    """A purl without version or qualifiers covers every version of that package."""
    if not purl:
        return False
    if pattern == purl:
        return True
    base = purl.split("?", 1)[0]
    return pattern in (base, base.split("@", 1)[0])
