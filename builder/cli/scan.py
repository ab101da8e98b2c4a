"""`python -m builder scan`: Trivy (vulnerabilities, secrets, Dockerfile checks, SBOM) and hadolint
on every built image and rendered Dockerfile of the named services, then the policy gate.

Exit codes:
  0  every target passed its variant's gate (dev never fails by default)
  1  a gate failed (a finding breaks the policy), or a tool/daemon fault
  2  bad input: unknown service, malformed image.yaml policy or .trivyignore.yaml, missing image
     or DB archive, conflicting options

A scanner that could not run (no vulnerability DB, image not built here) is reported as "not run"
and does not fail the gate by itself.
"""

from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path

from rich.markup import escape

from builder.cli.terminal import console
from builder.core.errors import UserError
from builder.engine.client import connect
from builder.project import Project
from builder.report import scan as scan_report
from builder.scan import trivy
from builder.scan.scanner import (
    ScanOptions,
    ScanResult,
    ScanTarget,
    plan,
    plan_image,
    scan_targets,
    start_session,
)


class RichScanProgress:
    def __init__(self) -> None:
        self.status = console.status("")

    def step(self, target: ScanTarget, what: str) -> None:
        self.status.update(f"[cyan]{escape(target.title)}[/] {escape(what)}")
        self.status.start()

    def done(self, result: ScanResult) -> None:
        self.status.stop()
        verdict = result.verdict
        word = scan_report.gate_word(verdict)
        colour = {"FAIL": "red", "PASS": "green"}.get(word, "yellow")
        # Findings quote image contents and the user's allow-list: text, never markup.
        console.print(f"[{colour}]{word:<11}[/] [bold]{escape(result.target.title)}[/] "
                      f"({escape(result.target.image or 'Dockerfile only')}) "
                      f"{result.seconds:.1f}s — {escape(scan_report.gate_reason(verdict))}")
        for violation in verdict.violations[:8]:
            console.print(f"    [red]✘[/] {escape(f'{violation.severity:<8} {violation.id} ')}"
                          f"{escape(f'{violation.where} ({violation.detail})')}")
        if len(verdict.violations) > 8:
            console.print(f"    … {len(verdict.violations) - 8} more in "
                          f"{escape(str(result.report_dir / 'summary.md'))}")
        for problem in verdict.problems:
            console.print(f"    [yellow]allow-list[/] {escape(problem)}")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scan = subparsers.add_parser(
        "scan", help="Trivy + hadolint on built images and rendered Dockerfiles, then the gate",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scan.add_argument("services", nargs="*")
    scan.add_argument("--all", action="store_true", help="every service")
    scan.add_argument("--variant", choices=("dev", "prod"), default=None,
                      help="only this variant (default: both)")
    scan.add_argument("--image", default=None, metavar="REF",
                      help="scan this image instead (its io.imagewright.* labels name the "
                           "service, variant and flavor)")
    scan.add_argument("--cache-dir", type=Path, default=None,
                      help=f"Trivy cache and DB (default: ${trivy.CACHE_ENV} or "
                           "<project>/.cache/trivy)")
    db = scan.add_mutually_exclusive_group()
    db.add_argument("--db-archive", type=Path, default=None, metavar="PATH",
                    help="a tar.gz with trivy.db and metadata.json, unpacked into the cache")
    db.add_argument("--db-repository", default=None, metavar="REF",
                    help="an OCI repository (e.g. a private mirror) Trivy downloads the DB from")
    scan.add_argument("--ignorefile", type=Path, default=None,
                      help="allow-list to use instead of .trivyignore.yaml at the root and in "
                           "images/<service>/")
    scan.add_argument("--reports-dir", type=Path, default=None,
                      help="where reports go (default: <project>/reports)")
    scan.set_defaults(run=cmd_scan)


def cmd_scan(project: Project, args: argparse.Namespace) -> int:
    if args.image and (args.all or len(args.services) > 1):
        raise UserError("scan: --image scans one image; name at most one service with it")
    engine = connect()
    if args.image:
        targets = [plan_image(project, engine, args.image,
                              args.services[0] if args.services else None, args.variant)]
    else:
        services = project.selection(args.services, args.all, required_by="scan")
        targets = plan(project, engine, services, args.variant)
    options = ScanOptions(
        cache_dir=trivy.cache_dir_for(project.cache_dir, args.cache_dir, os.environ),
        reports_dir=(args.reports_dir or project.reports_dir).resolve(),
        today=date.today(),
        db_archive=args.db_archive,
        db_repository=args.db_repository,
        ignorefile=args.ignorefile,
    )
    console.rule(f"[bold]scan[/] {len(targets)} target(s)")
    progress = RichScanProgress()
    results: list[ScanResult] = []
    try:
        session = start_session(options, engine)
        for result in scan_targets(project, targets, session, progress):
            scan_report.write_target_reports(result)
            progress.done(result)
            results.append(result)
    finally:
        progress.status.stop()
    summary = scan_report.write_overall_summary(results, session.db.detail, options.reports_dir)
    reasons = dict.fromkeys(note for result in results if result.target.image
                            for note in result.verdict.not_run)
    for note in reasons:
        console.print(f"[bold yellow]! not run:[/] {escape(note)}")
    console.print(f"reports: {summary.parent}/<service>/<target>/, summary {summary}", markup=False)
    if all(result.verdict.passed for result in results):
        console.print("[green]✔ gate passed[/]")
        return 0
    failed = [result.target.title for result in results if not result.verdict.passed]
    console.print(f"[red]✘ gate failed:[/] {escape(', '.join(failed))}")
    return 1
