"""`python -m builder compare` and `bench`: arguments, progress, tables, exit codes.

compare exit codes: 0 compared; 1 a dev/prod parity finding (prod has a package dev lacks or at
another version, or another Python) or a fault; 2 bad input (unknown service, missing image).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

from builder import naming
from builder.build.images import ImageBuilder
from builder.cli.terminal import BarBuildLog, console, progress_bar
from builder.compare.bench import Bench, run_bench
from builder.compare.goals import otel_goals
from builder.compare.measure import PILLAR_RUNS, Comparison, compare_service, pillar_runs
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
        self.task = self.progress.add_task(escape(title), total=total)

    def doing(self, description: str) -> None:
        self.show(description)

    def advance(self) -> None:
        if self.task is not None:
            self.progress.advance(self.task)

    def show(self, text: str) -> None:
        # Build steps and scan notes quote spec values: text, never markup.
        if self.task is None:
            self.task = self.progress.add_task(escape(text), total=None)
        self.progress.update(self.task, description=escape(text[:100]))


class _ScanLines:
    """ScanProgress for bench's timed scan."""

    def __init__(self, owner: RichCompareProgress) -> None:
        self.owner = owner

    def step(self, target: ScanTarget, what: str) -> None:
        self.owner.show(f"scan {target.title}: {what}")

    def done(self, result: ScanResult) -> None:
        scan_report.write_target_reports(result)
        console.print(f"[green]✔ scanned[/] {escape(result.target.title)} "
                      f"({escape(result.target.image or 'Dockerfile only')}) in "
                      f"{result.seconds:.1f}s")


RUNS_HELP = (f"startup measurements per mode (OTel on, OTel off; at most {PILLAR_RUNS} for "
             "traces only and for traces + metrics)")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compare = subparsers.add_parser(
        "compare", help="dev vs every prod flavor vs a naive baseline: size, packages, security, "
                        "startup; reports/<service>/compare.{json,md,html}",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("services", nargs="*")
    compare.add_argument("--all", action="store_true", help="every service")
    compare.add_argument("--runs", type=int, default=5, help=RUNS_HELP)
    compare.set_defaults(run=cmd_compare)

    bench = subparsers.add_parser(
        "bench", help="compare every sample service, time cold/warm builds and scans; "
                      "reports/bench.json")
    bench.add_argument("services", nargs="*", help="default: every service")
    bench.add_argument("--runs", type=int, default=5, help=RUNS_HELP)
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
        console.print("reports: " + ", ".join(str(p.relative_to(project.root)) for p in paths),
                      markup=False)
        drift += sum(1 for parity in comparison.parity if not parity.ok)
    if drift:
        console.print(f"[bold red]✘ dev/prod parity broken for {drift} image(s)[/]")
    return 1 if drift else 0


def show_comparison(comparison: Comparison) -> None:
    names = comparison.column_names
    grid = Table(title=_escape(f"{comparison.service}: {' vs '.join(names)} (startup: median of "
                               f"{comparison.runs})"), show_lines=False, title_justify="left")
    grid.add_column("")
    for name in names:
        grid.add_column(_escape(name), overflow="fold")
    section = ""
    for row in compare_table.table(comparison):
        if row.section != section:
            section = row.section
            grid.add_row(f"[bold]{_escape(section)}[/]", *[""] * len(names), end_section=False)
        grid.add_row(_escape(row.label), *[f"[bold red]{_escape(c.text)}[/]" if c.finding else _escape(c.text)
                                  for c in row.cells])
    console.print(grid)
    for line in compare_table.ratio_summary(comparison.ratios):
        console.print(f"  {line}", markup=False)
    for flavor, why in comparison.skipped:
        console.print(f"[yellow]! prod flavor '{_escape(flavor)}' not compared[/]: {_escape(why)}")
    for unmeasured in comparison.unmeasured:
        console.print(f"[yellow]! {_escape(unmeasured.name)} ({_escape(unmeasured.image)}) not "
                      f"run[/]: {_escape(unmeasured.reason)}")


def _escape(text: str) -> str:
    return escape(text)


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
                  f"reports/<service>/compare.{{json,md,html}}", markup=False)
    return 0


def show_bench(bench: Bench) -> None:
    console.rule(f"[bold]bench[/] {escape(bench.created)} — {escape(bench.machine.describe())}")
    for comparison in bench.comparisons:
        console.print(f"[bold]{escape(comparison.service)}[/] (startup: median of {bench.runs})")
        for line in compare_table.ratio_summary(comparison.ratios):
            console.print(f"  {line}", markup=False)
        console.print(f"  per pillar (median of {pillar_runs(bench.runs)}), all off → all on:")
        for line in compare_table.pillar_lines(comparison):
            console.print(f"    {line}", markup=False)
        for goal in otel_goals(comparison):
            mark = {True: "[green]✔[/]", False: "[red]✘[/]", None: "[yellow]?[/]"}[goal.met]
            value = "not measured" if goal.value is None else f"{goal.value:g}{goal.unit}"
            console.print(f"  {mark} {escape(goal.column)} {escape(goal.metric)}: {value} "
                          f"(goal ≤ {goal.goal:g}{goal.unit})")
    cold, warm = bench.cold_build, bench.warm_rebuild
    console.print(f"[bold]cold build[/] {escape(cold.image)} (no cache): {cold.seconds:.1f}s, "
                  f"{len(cold.steps)} steps")
    mark = "[green]✔[/]" if bench.dependencies_cached else "[red]✘[/]"
    rebuilt = "; ".join(s[:50] for s in warm.rebuilt) or "nothing"  # Dockerfile steps: text
    console.print(f"[bold]warm rebuild[/] after editing {escape(str(bench.edited_file))}: "
                  f"{warm.seconds:.1f}s, {warm.cached_steps}/{len(warm.steps)} steps from cache; "
                  f"{mark} dependency layers cached; rebuilt: {escape(rebuilt)}")
    if (every := bench.build_all) is not None:
        mark = "[green]✔[/]" if every.ratio <= compare_report.BUILD_ALL_GOAL else "[yellow]✘[/]"
        console.print(f"[bold]build all[/] ({len(every.targets)} images, cold): legacy "
                      f"{every.legacy_s:.1f}s, BuildKit one by one {every.buildkit_sequential_s:.1f}s, "
                      f"bake {every.buildkit_s:.1f}s: x{every.ratio} {mark} (goal ≤ "
                      f"x{compare_report.BUILD_ALL_GOAL})")
        console.print(f"[bold]rebuild after adding {escape(every.dependency)}[/]: legacy "
                      f"{every.dependency_legacy_s:.1f}s, BuildKit with pip's cache mount "
                      f"{every.dependency_buildkit_s:.1f}s")
    else:
        console.print(f"[yellow]build all not run[/]: {escape(bench.build_all_not_run)}")
    if bench.scans:
        for timing in bench.scans:
            console.print(f"[bold]scan[/] {escape(timing.target)} ({escape(timing.image)}): "
                          f"{timing.seconds:.1f}s")
    else:
        console.print(f"[yellow]scan not run[/]: {escape(bench.scan_not_run)}")
