"""`python -m builder compare` and `bench`: arguments, progress, tables, exit codes.

compare exit codes: 0 compared; 1 a dev/prod parity finding (prod has a package dev lacks or at
another version, or another Python) or a fault; 2 bad input (unknown service, missing image).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.progress import Progress, TaskID
from rich.table import Table

from builder import naming
from builder.build.images import ImageBuilder
from builder.cli.terminal import BarBuildLog, console, progress_bar
from builder.compare.bench import Bench, run_bench
from builder.compare.measure import Comparison, compare_service
from builder.core.errors import UserError
from builder.core.files import atomic_write
from builder.engine.client import connect
from builder.project import Project
from builder.report import compare as compare_report
from builder.report import compare_table
from builder.report import scan as scan_report
from builder.scan.scanner import ScanResult, ScanTarget


class RichCompareProgress:
    """One progress bar per service; builds and scans show up in its description."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    # CompareProgress
    def begin(self, title: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)
        self.task = self.progress.add_task(title, total=total)

    def doing(self, description: str) -> None:
        self.show(description)

    def advance(self) -> None:
        if self.task is not None:
            self.progress.advance(self.task)

    def show(self, text: str) -> None:
        if self.task is None:
            self.task = self.progress.add_task(text, total=None)
        self.progress.update(self.task, description=text[:100])


class _ScanLines:
    """ScanProgress for bench's timed scan."""

    def __init__(self, owner: RichCompareProgress) -> None:
        self.owner = owner

    def step(self, target: ScanTarget, what: str) -> None:
        self.owner.show(f"scan {target.title}: {what}")

    def done(self, result: ScanResult) -> None:
        scan_report.write_target_reports(result)
        console.print(f"[green]✔ scanned[/] {result.target.title} "
                      f"({result.target.image or 'Dockerfile only'}) in {result.seconds:.1f}s")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compare = subparsers.add_parser(
        "compare", help="dev vs every prod flavor vs a naive baseline: size, packages, security, "
                        "startup; reports/<service>/compare.{json,md,html}",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("services", nargs="*")
    compare.add_argument("--all", action="store_true", help="every service")
    compare.add_argument("--runs", type=int, default=5, help="startup measurements per mode")
    compare.set_defaults(run=cmd_compare)

    bench = subparsers.add_parser(
        "bench", help="compare every sample service, time cold/warm builds and scans; "
                      "reports/bench.json")
    bench.add_argument("services", nargs="*", help="default: every service")
    bench.add_argument("--runs", type=int, default=5, help="startup measurements per mode")
    bench.set_defaults(run=cmd_bench)


def cmd_compare(project: Project, args: argparse.Namespace) -> int:
    services = project.selection(args.services, args.all, required_by="compare")
    if args.runs < 1:
        raise UserError("compare: --runs must be at least 1")
    engine = connect()
    drift = 0
    for service in services:
        with progress_bar() as bar:
            progress = RichCompareProgress(bar)
            builder = ImageBuilder(engine, project, BarBuildLog(progress.show), lambda text: None)
            comparison = compare_service(engine, project, builder, service, args.runs, progress)
        paths = compare_report.write_reports(comparison, naming.report_dir(project.reports_dir, service.name))
        show_comparison(comparison)
        console.print("reports: " + ", ".join(str(p.relative_to(project.root)) for p in paths))
        drift += sum(1 for parity in comparison.parity if not parity.ok)
    if drift:
        console.print(f"[bold red]✘ dev/prod parity broken for {drift} image(s)[/]")
    return 1 if drift else 0


def show_comparison(comparison: Comparison) -> None:
    names = comparison.column_names
    grid = Table(title=f"{comparison.service}: {' vs '.join(names)} (startup: median of "
                       f"{comparison.runs})", show_lines=False, title_justify="left")
    grid.add_column("")
    for name in names:
        grid.add_column(name, overflow="fold")
    section = ""
    for row in compare_table.table(comparison):
        if row.section != section:
            section = row.section
            grid.add_row(f"[bold]{section}[/]", *[""] * len(names), end_section=False)
        grid.add_row(row.label, *[f"[bold red]{_escape(c.text)}[/]" if c.finding else _escape(c.text)
                                  for c in row.cells])
    console.print(grid)
    for line in compare_table.ratio_summary(comparison.ratios):
        console.print(f"  {line}")
    for flavor, why in comparison.skipped:
        console.print(f"[yellow]! prod flavor '{flavor}' not compared[/]: {why}")
    for unmeasured in comparison.unmeasured:
        console.print(f"[yellow]! {unmeasured.name} ({unmeasured.image}) not run[/]: "
                      f"{_escape(unmeasured.reason)}")


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def cmd_bench(project: Project, args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise UserError("bench: --runs must be at least 1")
    services = project.selection(args.services, False)
    engine = connect()
    with progress_bar() as bar:
        progress = RichCompareProgress(bar)
        bench = run_bench(engine, project, services, args.runs, progress, BarBuildLog(progress.show),
                          _ScanLines(progress), lambda text: None)
    files: list[Path] = []
    for comparison in bench.comparisons:
        files.extend(compare_report.write_reports(comparison,
                                                  naming.report_dir(project.reports_dir,
                                                                    comparison.service)))
    path = project.reports_dir / compare_report.BENCH_REPORT
    atomic_write(path, compare_report.bench_json(
        bench, [file.relative_to(project.root) for file in files]))
    show_bench(bench)
    console.print(f"reports: {path.relative_to(project.root)} and "
                  f"reports/<service>/compare.{{json,md,html}}")
    return 0


def show_bench(bench: Bench) -> None:
    console.rule(f"[bold]bench[/] {bench.created} — {bench.machine.describe()}")
    for comparison in bench.comparisons:
        console.print(f"[bold]{comparison.service}[/] (startup: median of {bench.runs})")
        for line in compare_table.ratio_summary(comparison.ratios):
            console.print(f"  {line}")
    cold, warm = bench.cold_build, bench.warm_rebuild
    console.print(f"[bold]cold build[/] {cold.image} (no cache): {cold.seconds:.1f}s, "
                  f"{len(cold.steps)} steps")
    mark = "[green]✔[/]" if bench.dependencies_cached else "[red]✘[/]"
    console.print(f"[bold]warm rebuild[/] after editing {bench.edited_file}: {warm.seconds:.1f}s, "
                  f"{warm.cached_steps}/{len(warm.steps)} steps from cache; {mark} dependency "
                  f"layers cached; rebuilt: {'; '.join(s[:50] for s in warm.rebuilt) or 'nothing'}")
    if bench.scans:
        for timing in bench.scans:
            console.print(f"[bold]scan[/] {timing.target} ({timing.image}): {timing.seconds:.1f}s")
    else:
        console.print(f"[yellow]scan not run[/]: {bench.scan_not_run}")
