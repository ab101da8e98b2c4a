"""ScanResult → `scan.json` (for machines: compare reads its counts) and Markdown for people.

Text builders, and the writers that put a target's reports in its folder and the overall summary
at the top. A scanner that did not run is always spelled out as "not run" with its reason, never
rendered as zero findings.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from builder.core.files import atomic_write
from builder.report.common import markdown_cell
from builder.scan.policy import Verdict, severity_rank
from builder.scan.scanner import ScanResult
from builder.scan.trivy import Outcome
from builder.spec.service import SEVERITIES

SCHEMA = "imagewright.scan/1"
_TOP = 10
_HADOLINT_LEVELS = ("error", "warning", "info", "style")
_PLURAL = {"vulnerability": "vulnerabilities", "secret": "secrets",
           "misconfiguration": "misconfigurations", "promise": "broken promises"}
_SINGULAR = {"promise": "broken promise"}


# Everything a scan writes into a target's folder; leftovers from an earlier scan are removed.
REPORT_FILES = ("trivy.json", "trivy-config.json", "trivy.sarif", "sbom.cdx.json",
                "hadolint.json", "scan.json", "summary.md")
SUMMARY_FILE = "summary.md"


def write_target_reports(result: ScanResult) -> None:
    """The tools' reports, scan.json and summary.md into the target's report folder."""
    outputs = {**result.tool_outputs, "scan.json": scan_json(result).encode(),
               SUMMARY_FILE: summary_markdown(result).encode()}
    for name, data in outputs.items():
        atomic_write(result.report_dir / name, data)
    for name in REPORT_FILES:
        if name not in outputs:
            (result.report_dir / name).unlink(missing_ok=True)


def write_overall_summary(results: Sequence[ScanResult], db_detail: str, reports_dir: Path) -> Path:
    path = reports_dir / SUMMARY_FILE
    atomic_write(path, overall_markdown(results, db_detail))
    return path


# ---- scan.json ------------------------------------------------------------------------------------

def scan_json(result: ScanResult) -> str:
    target = result.target
    findings = result.findings
    allowed = Counter(allowance.scanner for allowance in result.verdict.allowed)
    vulnerabilities = _section(findings.vulnerabilities, lambda items: {
        "total": len(items),
        "by_severity": _by_severity(v.severity for v in items),
        "fixable": sum(1 for v in items if v.fixable),
        "allowed": allowed["vulnerability"],
    })
    secrets = _section(findings.secrets, lambda items: {
        "count": len(items), "by_severity": _by_severity(s.severity for s in items),
        "allowed": allowed["secret"],
    })
    misconfigurations = _section(findings.misconfigurations, lambda items: {
        "count": len(items), "by_severity": _by_severity(m.severity for m in items),
        "allowed": allowed["misconfiguration"],
    })
    sbom: dict[str, Any] = (
        {"status": "ok", "file": "sbom.cdx.json", "packages": result.sbom.packages,
         "by_type": dict(result.sbom.by_type)}
        if result.sbom is not None else {"status": "not-run", "reason": result.sbom_not_run})
    document = {
        "schema": SCHEMA,
        "service": target.service,
        "label": target.label,
        "variant": target.variant,
        "flavor": target.flavor,
        "image": ({"ref": target.image, "id": result.image_id, "os": result.os}
                  if target.image else None),
        "image_missing": target.why_no_image or None,
        "dockerfile": result.dockerfile,
        "scanned_at": result.scanned_at,
        "seconds": round(result.seconds, 2),
        "trivy_version": result.trivy_version,
        "db": {"mode": result.db.mode, "detail": result.db.detail,
               "updated_at": result.db.updated_at or None},
        "allow_list": list(result.allow_list_files),
        "vulnerabilities": vulnerabilities,
        "secrets": secrets,
        "misconfigurations": misconfigurations,
        "sbom": sbom,
        "hadolint": {
            "status": "ok",
            "count": len(result.hadolint),
            "by_level": {level: sum(1 for f in result.hadolint if f.level == level)
                         for level in _HADOLINT_LEVELS},
            "unjustified_ignores": list(result.unjustified_ignores),
            "findings": [asdict(finding) for finding in result.hadolint],
        },
        "gate": _gate(target.variant, result.verdict),
        "files": list(result.files),
    }
    return json.dumps(document, indent=2, default=str) + "\n"


def _section(outcome: Outcome[Any], counts: Any) -> dict[str, Any]:
    if not outcome.ran:
        return {"status": "not-run", "reason": outcome.not_run}
    return {"status": "ok", **counts(outcome.items),
            "findings": [asdict(item) for item in outcome.items]}


def _by_severity(severities: Iterable[str]) -> dict[str, int]:
    counts = Counter(severities)
    return {severity: counts.get(severity, 0) for severity in reversed(SEVERITIES)}


def _gate(variant: str, verdict: Verdict) -> dict[str, Any]:
    return {
        "variant": variant,
        "passed": verdict.passed,
        "enforcing": verdict.enforcing,
        "policy": asdict(verdict.policy),
        "violations": [asdict(v) for v in verdict.violations],
        "allowed": [asdict(a) for a in verdict.allowed],
        "problems": list(verdict.problems),
        "not_run": list(verdict.not_run),
        "promises": [asdict(result) for result in verdict.promises],
    }


# ---- per-image summary.md -------------------------------------------------------------------------

def summary_markdown(result: ScanResult) -> str:
    target, findings, verdict = result.target, result.findings, result.verdict
    image = (f"`{target.image}` ({result.image_id[7:19] or '?'}, {result.os or 'unknown OS'})"
             if target.image else f"not scanned: {target.why_no_image}")
    lines = [
        f"# Scan: {target.service} {target.label}",
        "",
        f"- **Gate: {gate_word(verdict)}** — {gate_reason(verdict)}",
        f"- Image: {image}",
        f"- Variant: {target.variant}" + (f", flavor: {target.flavor}" if target.flavor else ""),
        f"- Dockerfile: `{result.dockerfile}`",
        f"- Vulnerability DB: {result.db.detail}",
        f"- Allow-list: {', '.join(f'`{f}`' for f in result.allow_list_files) or 'none'}",
        f"- Trivy {result.trivy_version}, scanned {result.scanned_at} in {result.seconds:.1f}s",
        "",
        "## Findings by scanner and severity",
        "",
        "| Scanner | " + " | ".join(reversed(SEVERITIES)) + " | Total |",
        "|---|" + "---:|" * (len(SEVERITIES) + 1),
        _count_row("Vulnerabilities", findings.vulnerabilities, lambda v: v.severity),
        _count_row("Secrets", findings.secrets, lambda s: s.severity),
        _count_row("Misconfigurations", findings.misconfigurations, lambda m: m.severity),
        "",
        f"hadolint: {_hadolint_counts(result)}. SBOM: {_sbom_text(result)}.",
        "",
        "## Gate",
        "",
        f"Policy ({target.variant}): {policy_text(verdict)}.",
    ]
    if verdict.promises:
        broken = [r for r in verdict.promises if not r.passed]
        lines += ["", f"Promises of the {target.flavor} flavor (templates/catalog.yaml): "
                      + (f"{len(broken)} of {len(verdict.promises)} broken: "
                         + ", ".join(f"{r.id} ({r.promise})" for r in broken) if broken
                         else f"all {len(verdict.promises)} hold ("
                              + ", ".join(r.id for r in verdict.promises) + ")") + "."]
    if verdict.not_run:
        lines += ["", "Not run (a scanner that did not run does not fail the gate by itself — "
                      "its findings are unknown, not zero):"]
        lines += [f"- {markdown_cell(note)}" for note in verdict.not_run]
    if verdict.violations:
        lines += ["", "| Violation | Scanner | Severity | Where | Detail |",
                  "|---|---|---|---|---|"]
        lines += [f"| {markdown_cell(v.id)} | {v.scanner} | {v.severity} | {markdown_cell(v.where)} | "
                  f"{markdown_cell(v.detail)} |" for v in verdict.violations[:50]]
        if len(verdict.violations) > 50:
            lines.append(f"\n…and {len(verdict.violations) - 50} more (see scan.json).")
    if verdict.allowed:
        lines += ["", "Allowed by the allow-list:", ""]
        lines += [f"- {a.scanner} {a.id} at {markdown_cell(a.where)} until {a.expires:%Y-%m-%d}: "
                  f"{markdown_cell(a.statement)} ({a.source})" for a in verdict.allowed]
    if verdict.problems:
        lines += ["", "Allow-list problems (these entries allow nothing):", ""]
        lines += [f"- {markdown_cell(problem)}" for problem in verdict.problems]
    lines += _top_vulnerabilities(result) + _secrets(result) + _misconfigurations(result)
    lines += _hadolint(result)
    lines += ["", "Files: " + ", ".join(f"`{name}`" for name in result.files), ""]
    return "\n".join(lines)


def _count_row(name: str, outcome: Outcome[Any], severity: Any) -> str:
    if not outcome.ran:
        return f"| {name} | " + " | ".join("—" for _ in SEVERITIES) + " | **not run** |"
    counts = Counter(severity(item) for item in outcome.items)
    cells = [str(counts.get(level, 0)) for level in reversed(SEVERITIES)]
    return f"| {name} | " + " | ".join(cells) + f" | {len(outcome.items)} |"


def _hadolint_counts(result: ScanResult) -> str:
    counts = Counter(finding.level for finding in result.hadolint)
    text = ", ".join(f"{counts[level]} {level}" for level in _HADOLINT_LEVELS if counts[level])
    return f"{len(result.hadolint)} finding(s)" + (f" ({text})" if text else "")


def _sbom_text(result: ScanResult) -> str:
    if result.sbom is None:
        return f"not run ({result.sbom_not_run})"
    kinds = ", ".join(f"{count} {kind}" for kind, count in result.sbom.by_type)
    return f"{result.sbom.packages} packages ({kinds}) in `sbom.cdx.json`"


def _top_vulnerabilities(result: ScanResult) -> list[str]:
    outcome = result.findings.vulnerabilities
    if not outcome.ran or not outcome.items:
        return []
    ranked = sorted(outcome.items, key=lambda v: (-severity_rank(v.severity), not v.fixable, v.id))
    lines = ["", f"## Top vulnerabilities ({min(_TOP, len(ranked))} of {len(ranked)})", "",
             "| ID | Severity | Package | Installed | Fixed in | Title |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {markdown_cell(v.id)} | {v.severity} | {markdown_cell(v.package)} | "
              f"{markdown_cell(v.installed_version)} | {markdown_cell(v.fixed_version) or '—'} | "
              f"{markdown_cell(v.title[:80])} |" for v in ranked[:_TOP]]
    return lines


def _secrets(result: ScanResult) -> list[str]:
    outcome = result.findings.secrets
    if not outcome.ran or not outcome.items:
        return []
    lines = ["", "## Secrets (values redacted by Trivy)", ""]
    lines += [f"- {s.severity} {s.rule_id} ({markdown_cell(s.title)}) in `{s.path}` line {s.line}, "
              f"layer {s.layer[7:19] or '?'}" for s in outcome.items]
    return lines


def _misconfigurations(result: ScanResult) -> list[str]:
    outcome = result.findings.misconfigurations
    if not outcome.ran or not outcome.items:
        return []
    lines = ["", "## Dockerfile misconfigurations (trivy config)", ""]
    lines += [f"- {m.severity} {m.id} line {m.line or '—'}: {markdown_cell(m.title)} — "
              f"{markdown_cell(m.resolution)}" for m in outcome.items[:_TOP]]
    return lines


def _hadolint(result: ScanResult) -> list[str]:
    lines: list[str] = []
    if result.hadolint:
        lines += ["", "## hadolint", ""]
        lines += [f"- {f.level} {f.code} line {f.line}: {markdown_cell(f.message)}"
                  for f in result.hadolint[:_TOP]]
    if result.unjustified_ignores:
        lines += ["", "`# hadolint ignore=` without a reason on the line above, at line(s) "
                      + ", ".join(str(n) for n in result.unjustified_ignores) + "."]
    return lines


# ---- words shared with the terminal ---------------------------------------------------------------

def gate_word(verdict: Verdict) -> str:
    if not verdict.passed:
        return "FAIL"
    return "PASS" if verdict.enforcing else "REPORT ONLY"


def gate_reason(verdict: Verdict) -> str:
    if not verdict.passed:
        kinds = Counter(v.scanner for v in verdict.violations)
        return "policy violated by " + ", ".join(
            f"{count} {_PLURAL[kind] if count != 1 else _SINGULAR.get(kind, kind)}"
            for kind, count in kinds.items())
    if not verdict.enforcing:
        return "this variant's policy never fails (findings are reported only)"
    extra = f"; {len(verdict.allowed)} finding(s) allowed by the allow-list" \
        if verdict.allowed else ""
    unknown = "; " + ", ".join(note.split(":", 1)[0] for note in verdict.not_run) + \
        " not run" if verdict.not_run else ""
    return "no finding breaks the policy" + extra + unknown


def policy_text(verdict: Verdict) -> str:
    policy = verdict.policy
    if not verdict.enforcing:
        return "report only"
    parts = []
    if policy.fail_on_severity:
        parts.append(f"fail on {'/'.join(policy.fail_on_severity)} vulnerabilities"
                     + (" that have a fix" if policy.only_fixed else ""))
    if policy.fail_on_secrets:
        parts.append("fail on any secret")
    if policy.fail_on_misconfig_severity:
        parts.append(f"fail on {'/'.join(policy.fail_on_misconfig_severity)} misconfigurations")
    if verdict.promises:
        parts.append("fail on a broken promise of the flavor")
    return "; ".join(parts)


# ---- reports/summary.md across images -------------------------------------------------------------

def overall_markdown(results: Sequence[ScanResult], db_detail: str) -> str:
    failed = [r for r in results if not r.verdict.passed]
    lines = [
        "# imagewright scan",
        "",
        f"**{'FAIL' if failed else 'PASS'}**: {len(results)} target(s) scanned, "
        f"{len(failed)} failing the gate. Vulnerability DB: {db_detail}.",
        "",
        "| Target | Gate | Vulnerabilities (C/H/M/L) | Fixable | Secrets | Misconfig | "
        "hadolint | SBOM packages |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        findings = result.findings
        vulns = findings.vulnerabilities
        if vulns.ran:
            counts = Counter(v.severity for v in vulns.items)
            vuln_cell = "/".join(str(counts.get(s, 0)) for s in ("CRITICAL", "HIGH", "MEDIUM",
                                                                  "LOW"))
            fixable = str(sum(1 for v in vulns.items if v.fixable))
        else:
            vuln_cell, fixable = "not run", "—"
        image = f" `{result.target.image}`" if result.target.image else " (Dockerfile only)"
        lines.append(
            f"| {result.target.title}{image} | "
            f"{gate_word(result.verdict)} | {vuln_cell} | {fixable} | "
            f"{_count(findings.secrets)} | {_count(findings.misconfigurations)} | "
            f"{len(result.hadolint)} | "
            f"{result.sbom.packages if result.sbom is not None else 'not run'} |")
    notes = [f"{r.target.title}: {gate_reason(r.verdict)}" for r in failed]
    not_run: dict[str, list[str]] = {}
    for result in results:
        if result.target.image:  # Dockerfile-only targets already say so in the table
            for note in result.verdict.not_run:
                not_run.setdefault(note, []).append(result.target.title)
    notes += [f"not run for {', '.join(titles)}: {note}" for note, titles in not_run.items()]
    notes += [f"{r.target.title}: allow-list problem: {problem}"
              for r in results for problem in r.verdict.problems]
    if notes:
        lines += ["", *(f"- {markdown_cell(note)}" for note in notes)]
    lines += ["", "Scanners that did not run are shown as *not run*: their findings are unknown, "
                  "and they do not fail the gate by themselves. Per-target details: "
                  "`reports/<service>/<target>/summary.md`.", ""]
    return "\n".join(lines)


def _count(outcome: Outcome[Any]) -> str:
    return str(len(outcome.items)) if outcome.ran else "not run"
