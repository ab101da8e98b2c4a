"""Command line: arguments, progress, exit codes. The only module that prints or exits.

Exit codes: 0 success, 1 a fault or a violated policy, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.text import Text

from builder import naming
from builder.build.context import context_paths
from builder.build.images import BuildResult, ImageBuilder
from builder.cli import compare as cli_compare
from builder.cli import dev as cli_dev
from builder.cli import scan as cli_scan
from builder.cli.service_map import show_service_map
from builder.cli.terminal import StreamedBuildLog, console, errors, say
from builder.core.clock import utc_timestamp
from builder.core.errors import UserError
from builder.core.files import atomic_write
from builder.engine.client import Engine, connect
from builder.engine.containers import remove_leftovers, sweep_own_containers
from builder.init.detect import guess, iter_checks, shlex_join
from builder.init.scaffold import spec_text, validated_loader, write_service
from builder.project import Project, find_project
from builder.render.compose import compose_file
from builder.render.dockerfiles import (
    bake_file,
    orphaned_files,
    rendered_files,
    stale_files,
    write_files,
)
from builder.render.pins import pins_path, pins_text
from builder.report.common import write_json
from builder.report.service_map import MapContext, write_service_map
from builder.report.verify import OTEL_REPORT, otel_document, received_counts
from builder.spec.parity import python_minor
from builder.spec.service import ServiceSpec
from builder.verify.receiver import ReceivedSpan
from builder.verify.run import image_to_verify, promises_kept, startup_profile
from builder.verify.spans import VerifyReport, verify_image
from builder.verify.together import verify_together
from builder.verify.trace_tree import format_trace_tree

# ---- commands ----------------------------------------------------------------------------------

def cmd_render(project: Project, args: argparse.Namespace) -> int:
    if args.pin:
        _pin_bases(project)
    files = [f for service in project.select(args.services)
             for f in rendered_files(project.renderer, service, project.build_dir)]
    files.append(compose_file(project.renderer, project.services(), project.build_dir))
    if not args.services:  # the bake file covers the whole project
        files.append(bake_file(project.renderer, project.services(), project.build_dir))
    # Orphans only make sense against the whole project's renders.
    orphans = [] if args.services else orphaned_files(project.build_dir, files)
    if args.check:
        stale = stale_files(files)
        for path in stale:
            errors.print(f"[red]stale:[/] {escape(project.display(path))}")
        for path in orphans:
            errors.print(f"[red]orphaned:[/] {escape(project.display(path))} (no service or flavor "
                         "renders it)")
        if stale or orphans:
            errors.print("rendered files are not current: run `make render` and commit them")
            return 1
        console.print(f"[green]✔[/] {len(files)} rendered files are current")
        return 0
    write_files(files)
    for rendered in files:
        console.print(f"wrote {project.display(rendered.path)}", markup=False)
    for path in orphans:
        path.unlink()
        console.print(f"removed {project.display(path)} (no service or flavor renders it)",
                      markup=False)
    return 0


def cmd_bake(project: Project, args: argparse.Namespace) -> int:
    """Write build/docker-bake.json (also written and checked by `render`)."""
    rendered = bake_file(project.renderer, project.services(), project.build_dir)
    write_files([rendered])
    groups = json.loads(rendered.text)["group"]
    console.print(f"wrote {project.display(rendered.path)}: "
                  f"{len(json.loads(rendered.text)['target'])} targets; groups "
                  + ", ".join(f"{name} ({len(group['targets'])})" for name, group in groups.items()))
    say(f"build at the project's root: docker buildx bake -f {project.display(rendered.path)} "
        "[group or target …]")
    return 0


def _pin_bases(project: Project) -> None:
    """Pin every base the renders use to what is local now: a registry digest, else the image id."""
    resolver = ImageBuilder(connect(), project, StreamedBuildLog(False), say).bases
    pins, absent = resolver.pins(resolver.pinnable())
    for ref in absent:
        console.print(f"[yellow]! {escape(ref)} is not present locally: left unpinned[/]")
    for ref, pinned in pins.items():
        console.print(f"pinned {ref} → {pinned}", markup=False)
    atomic_write(pins_path(project.build_dir), pins_text(pins))
    project.renderer.pins.clear()
    project.renderer.pins.update(pins)


def cmd_bases(project: Project, args: argparse.Namespace) -> int:
    builder = ImageBuilder(connect(), project, StreamedBuildLog(args.verbose), say)
    refs = sorted(set(project.catalog.bases) if args.all
                  else project.catalog.bases_for(project.services()))
    missing = 0
    for ref in refs:
        availability = builder.bases.availability(ref)
        if not availability.available:
            missing += 1
            console.print(f"[yellow]✘ {escape(ref)}[/]: not available on this machine: "
                          f"{escape(availability.how)}")
            continue
        resolved = builder.bases.resolve(ref)
        console.print(f"[green]✔ {escape(ref)}[/] {resolved.image_id[7:19]} "
                      f"({escape(resolved.how)}; {escape(resolved.provenance)})")
    if missing:
        console.print(f"{missing} base(s) unavailable here; flavors built on them are skipped")
    return 0


def cmd_build(project: Project, args: argparse.Namespace) -> int:
    services = project.selection(args.services, args.all, required_by="build")
    if args.debug_twin and args.variant != "prod":
        raise UserError("build: --debug-twin goes with --variant prod (dev has every tool already)")
    builder = ImageBuilder(connect(), project, StreamedBuildLog(args.verbose), say)
    for ref in project.renderer.unpinned(sorted(project.catalog.bases_for(services))):
        console.print(f"[yellow]! base {escape(ref)} is not pinned by digest (`imagewright render --pin` "
                      f"pins the local bases)[/]")
    results: list[BuildResult] = []
    for service in services:
        if args.variant == "dev":
            results.append(builder.build_target(service, project.catalog.targets(service)[0],
                                                primary=True))
            continue
        choice = builder.choose_flavors(service, args.flavor)
        for flavor, reason in choice.skipped:
            console.print(f"[bold yellow]! {service.name}: skipping prod flavor '{flavor}'[/]: "
                          f"{escape(reason)}")
        if args.flavor is None and choice.skipped:
            console.print(f"[bold yellow]! {service.name}: building prod flavor "
                          f"'{choice.build[0].flavor}' instead of the preferred "
                          f"'{service.prod.flavors[0]}'[/]")
        for index, target in enumerate(choice.build):
            results.append(builder.build_target(service, target, primary=index == 0))
            if args.debug_twin and target.debug_twin is not None:
                results.append(builder.build_debug_twin(service, results[-1]))
            elif args.debug_twin:
                console.print(f"[yellow]! {service.name} {target.label} has a shell already: "
                              f"no debug twin[/]")
    _show_python_parity(builder, services)
    console.rule("[bold]built")
    for result in results:
        console.print(f"[green]✔[/] {result.service} {result.tags[0].partition(':')[2]}: "
                      f"{', '.join(result.tags)}  {result.size / 1e6:.1f} MB  "
                      f"{result.seconds:.1f}s  base {escape(result.base.ref)} "
                      f"({escape(result.base.how)})")
    return 0


def _show_python_parity(builder: ImageBuilder, services: list[ServiceSpec]) -> None:
    for parity in builder.python_parity(services):
        if parity.ok:
            console.print(f"[green]✔[/] {parity.service}: dev and prod both run Python "
                          f"{python_minor(parity.dev)}")
        else:
            console.print(f"[bold red]✘ {escape(parity.service)}: dev runs Python "
                          f"{escape(parity.dev)} but prod runs {escape(parity.prod)}: behaviour can "
                          "differ between them[/]")


def cmd_verify(project: Project, args: argparse.Namespace) -> int:
    engine = connect()
    failed = 0
    variants = [args.variant] if args.variant else ["dev", "prod"]
    services = project.selection(args.services, args.all)
    for service in [] if args.together else services:
        for variant in variants:
            image = image_to_verify(engine, service, variant)
            console.rule(f"[bold]verify {image}")
            report = verify_image(engine, service, variant, image)
            # Span names and attributes come from the app: printed as they are, never as markup.
            tree = format_trace_tree(list(report.spans))
            console.print(escape(tree) if tree else "[red](no spans received)[/]")
            counts = received_counts(report)
            console.print(
                f"received: {counts['traces']['spans']} spans · {counts['metrics']['metrics']} "
                f"metrics ({counts['metrics']['data_points']} data points) · "
                f"{counts['logs']['records']} log records "
                f"({counts['logs']['records_in_a_trace']} inside a trace)")
            for check in report.checks:
                mark = "[green]✔[/]" if check.passed else "[red]✘[/]"
                detail = "" if check.passed else f"\n    [dim]{escape(check.detail)}[/]"
                console.print(f"{mark} {escape(check.description)}{detail}")
            _show_otel_setup(service, report)
            promises = promises_kept(engine, project, service, variant, image)
            for result in promises:
                mark = "[green]✔[/]" if result.passed else "[red]✘[/]"
                console.print(f"{mark} {result.id} {escape(result.title)}: {escape(result.detail)}")
            if not report.ok or not all(result.passed for result in promises):
                failed += 1
            profile = None
            if report.ready:
                with Progress(console=console, transient=True) as progress:
                    task = progress.add_task(f"startup x{args.runs}, with and without OTel",
                                             total=args.runs * 2)
                    def tick(_: int, task: TaskID = task) -> None:
                        progress.advance(task)

                    profile = startup_profile(engine, service, variant, image,
                                              project.layout.image, args.runs, tick)
            document = otel_document(report, profile, promises)
            path = naming.report_dir(project.reports_dir, service.name, variant) / OTEL_REPORT
            write_json(path, document)
            console.print(f"{_startup_line(document, args.runs)} → "
                          f"{escape(str(path.relative_to(project.root)))}")
    # Several services: then all of them at once, on one network, for the map of their calls.
    if args.together or len(services) > 1:
        failed += sum(not verify_services_together(project, engine, services, variant)
                      for variant in variants)
    if failed:
        errors.print(f"[red]verify failed for {failed} image(s) or run(s) together[/]")
    return 1 if failed else 0


def _show_otel_setup(service: ServiceSpec, report: VerifyReport) -> None:
    """Who set OpenTelemetry up in the running app, and what the app's own set-up amounts to."""
    setup = report.otel_setup
    if setup is None:
        return
    console.print(f"[bold]OpenTelemetry:[/] {escape(setup.summary())}")
    for evidence in setup.evidence:
        console.print(f"  [yellow]![/] {escape(evidence)}")
    if advice := setup.advice(service.spec_file):
        console.print(f"  [bold yellow]![/] {escape(advice)}")


def _startup_line(document: dict[str, Any], runs: int) -> str:
    startup = document["startup"]
    if startup is None:
        return "startup not measured: the service never became ready, or did not stay up"
    otel, plain = startup["with_opentelemetry"], startup["without_wrapper"]
    if "healthy" not in otel or "healthy" not in plain:
        return f"startup not measured: {otel.get('problem') or plain.get('problem')}"
    off = ("OTel really off" if plain["really_off"] else
           f"[red]OTel could not be turned off ({plain['leaked_spans']} spans arrived)[/]")
    return (f"startup (median of {runs}): ready {otel['healthy']['median_ms']:.0f} ms with OTel, "
            f"{plain['healthy']['median_ms']:.0f} ms without "
            f"(x{startup['healthy_ratio_otel_over_plain']}; {off}); first span "
            f"{otel.get('first_span', {}).get('median_ms', '—')} ms; protobuf backend "
            f"{document['protobuf_backend']}")


def verify_services_together(project: Project, engine: Engine, services: list[ServiceSpec],
                             variant: str) -> bool:
    """The services' `variant` images on one network, their smoke requests sent a few rounds: the
    checks, one request's story across services, the service map (terminal and report)."""
    images = {service.name: image_to_verify(engine, service, variant) for service in services}
    console.rule(f"[bold]verify together: {', '.join(images.values())}")
    report = verify_together(engine, services, variant, images)
    # One request's story across services, when they call each other: its whole trace.
    by_trace: dict[str, list[ReceivedSpan]] = {}
    for span in report.spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    crossing = [spans for spans in by_trace.values() if len({s.service_name for s in spans}) > 1]
    if crossing:
        console.print(Text(format_trace_tree(crossing[0])))
    show_service_map(report.service_map, f"service map ({variant}, {len(report.spans)} spans)")
    for check in report.checks:
        mark = "[green]✔[/]" if check.passed else "[red]✘[/]"
        detail = "" if check.passed else f"\n    [dim]{escape(check.detail)}[/]"
        console.print(f"{mark} {escape(check.description)}{detail}")
    page, _ = write_service_map(project.reports_dir, report.service_map, MapContext(
        variant, utc_timestamp(), report.images, len(report.spans)))
    console.print(f"service map → {project.display(page)}")
    return report.ok


def cmd_init(project: Project, args: argparse.Namespace) -> int:
    """Like `docker init`: inspect an existing service, write images/<name>/ and its renders."""
    app = args.path.resolve()
    if not app.is_dir():
        raise UserError(f"init: {args.path}: no such folder")
    name = args.name or re.sub(r"[^a-z0-9._-]+", "-", app.name.lower()).strip("-._") or "app"
    dockerignore = project.renderer.dockerignore()
    kept = set(context_paths(app, dockerignore))  # what a build context would send of it
    result = guess(app, name, kept)
    if not result.sources:
        raise UserError(f"init: {args.path}: no Python source found to build an image from")
    text = spec_text(result, project.catalog.flavor_names, project.display(app))
    written = write_service(
        result, app, project.images_dir, text, force=args.force, kept=kept,
        load=validated_loader(project.catalog.flavor_names, project.root))
    files = rendered_files(project.renderer, written.spec, project.build_dir)
    write_files(files)
    spec_path = project.display(written.folder / "image.yaml")
    verb = "replaced" if written.replaced else "wrote"
    where = ("in place" if written.in_place
             else f"{len(written.copied)} files copied from {project.display(app)}")
    console.print(f"[green]✔[/] {verb} {escape(spec_path)} ({escape(where)}) and "
                  f"{len(files)} renders under {escape(project.display(files[0].path.parent))}")
    app_found = result.app
    rows = [
        ("framework", f"{app_found.framework} ({app_found.interface.upper()}) {app_found.target}"
         if app_found else "not found", app_found.source if app_found else ""),
        ("dependencies", result.dependencies.declared, result.dependencies.source),
        ("port", result.port.value, result.port.source),
        ("health", result.health.value if result.health else "/ (assumed)",
         result.health.source if result.health else "no health route found"),
        ("server", result.server.value if result.server else
         f"none declared: added {', '.join(result.added_packages) or 'nothing'}",
         result.server.source if result.server else "prod.pip_packages"),
        ("dev", shlex_join(result.dev_command), ""),
        ("prod", shlex_join(result.prod_command), ""),
        ("own OpenTelemetry", "yes" if result.otel_setup else "no",
         ", ".join(f.source for f in result.otel_setup[:3])),
    ]
    for label, value, source in rows:
        console.print(f"  {label:<18} {escape(value)}" + (f"  [dim]({escape(source)})[/]" if source else ""))
    for route in result.smoke:
        console.print(f"  {'smoke':<18} GET {escape(route.path)} → {route.status}"
                      f"{' spans ' + ', '.join(route.spans) if route.spans else ''}"
                      f"  [dim]({escape(route.source)})[/]")
    if written.not_copied:
        console.print(f"  {'not copied':<18} {escape(', '.join(written.not_copied[:10]))}"
                      f"{' …' if len(written.not_copied) > 10 else ''}  [dim](kept out of build "
                      "contexts: secrets, caches, VCS, virtualenvs)[/]")
    checks = list(iter_checks(result))
    if checks:
        console.print("[bold yellow]check:[/]")
        for check in checks:
            console.print(f"  [yellow]•[/] {escape(check)}")
    console.print(f"next: make build-dev SERVICE={escape(name)} && make verify SERVICE={escape(name)}")
    return 0


DEMO_STEPS = (
    ["build", "--all", "--variant", "dev"],
    ["build", "--all", "--variant", "prod", "--flavor", "all", "--debug-twin"],
    ["verify", "--all"],
    ["scan", "--all"],
    ["compare", "--all"],
)


def cmd_demo(project: Project, args: argparse.Namespace) -> int:
    """The README's main job: every step, in pipeline order, for every service."""
    worst = 0
    for step in DEMO_STEPS:
        console.rule(f"[bold magenta]demo: {' '.join(step)}")
        code = main(["-C", str(project.root), *step])
        if code in (2, 130):  # bad input or interrupted: the later steps would only repeat it
            return code
        worst = max(worst, code)
    return worst


def cmd_clean(project: Project, args: argparse.Namespace) -> int:
    removed = remove_leftovers(connect())
    console.print(f"removed {len(removed)} leftover container(s) {' '.join(removed)}".rstrip(),
                  markup=False)
    return 0


# ---- parsing -----------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="imagewright", description=__doc__.splitlines()[0])
    top.add_argument("-v", "--verbose", action="store_true", help="show the full build log")
    top.add_argument("-C", "--project", type=Path, default=None,
                     help="project root (default: found from the current directory)")
    sub = top.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="write build/<service>/Dockerfile.<variant>")
    render.add_argument("services", nargs="*")
    render.add_argument("--check", action="store_true",
                        help="fail if the committed renders are not current")
    render.add_argument("--pin", action="store_true",
                        help="pin base images to the digests of the local bases (build/bases.lock.yaml)")
    render.set_defaults(run=cmd_render)

    bake = sub.add_parser("bake", help="write build/docker-bake.json (targets for `docker buildx bake`)")
    bake.set_defaults(run=cmd_bake)

    bases = sub.add_parser("bases", help="make the base images available (local, pull, bootstrap)")
    bases.add_argument("--all", action="store_true", help="every base in the catalog")
    bases.set_defaults(run=cmd_bases)

    build = sub.add_parser("build", help="build images")
    build.add_argument("services", nargs="*")
    build.add_argument("--all", action="store_true", help="every service")
    build.add_argument("--variant", choices=("dev", "prod"), required=True)
    build.add_argument("--debug-twin", action="store_true",
                       help="with --variant prod: also build <service>:prod-<flavor>-debug, the "
                            "prod image plus busybox, for each shell-less flavor built")
    build.add_argument("--flavor", default=None,
                       help="prod flavor: a name, or 'all' (default: first available by preference)")
    build.set_defaults(run=cmd_build)

    verify = sub.add_parser("verify", help="prove traces, metrics and logs reach an OTLP endpoint; "
                                           "measure startup")
    verify.add_argument("services", nargs="*")
    verify.add_argument("--all", action="store_true", help="every service (the default)")
    verify.add_argument("--variant", choices=("dev", "prod"), default=None,
                        help="default: both")
    verify.add_argument("--runs", type=int, default=5, help="startup measurements per mode")
    verify.add_argument("--together", action="store_true",
                        help="only run the services together (one network) and build the service "
                             "map; several services get this after their one-by-one checks anyway")
    verify.set_defaults(run=cmd_verify)

    init = sub.add_parser("init", help="inspect an existing Python service and write "
                                       "images/<name>/ with a guessed image.yaml")
    init.add_argument("path", type=Path, help="the service's folder")
    init.add_argument("--name", default=None,
                      help="service name (default: the folder's name)")
    init.add_argument("--force", action="store_true", help="replace an existing image.yaml")
    init.set_defaults(run=cmd_init)

    demo = sub.add_parser("demo", help="build every variant available here, verify, scan, compare")
    demo.set_defaults(run=cmd_demo)

    cli_scan.add_parser(sub)
    cli_compare.add_parser(sub)
    cli_dev.add_parser(sub)

    clean = sub.add_parser("clean", help="remove containers imagewright left behind")
    clean.set_defaults(run=cmd_clean)
    return top


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # one cleanup path for Ctrl-C and `kill`: every `finally` runs


def _ignore_further_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        project = Project(args.project.resolve()) if args.project else find_project(Path.cwd())
        code = int(args.run(project, args))
    except UserError as error:
        # The message quotes user input (a spec value, a build log): never read as markup.
        errors.print(f"[red]error:[/] {escape(error.message)}")
        return error.exit_code
    except KeyboardInterrupt:
        _ignore_further_interrupts()
        sweep_own_containers()
        errors.print("[red]interrupted[/]")
        return 130
    if args.command != "render":
        console.print(f"[dim]{args.command} took {time.monotonic() - started:.1f}s[/]")
    return code


if __name__ == "__main__":
    sys.exit(main())
