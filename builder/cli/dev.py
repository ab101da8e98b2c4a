"""`python -m builder dev [SERVICE…|--all]` (`make dev`): the dev loop.

Every selected service's dev image runs through build/compose.yaml (Compose v2): the source
bind-mounted over the image's copy (the dev commands reload on edits), ports published on
loopback, SYS_PTRACE/NET_ADMIN/NET_RAW added so strace, py-spy and tcpdump work through
`docker exec -u 0`. Their telemetry goes to imagewright's own OTLP receiver on this machine, which
prints each request's trace tree as it completes; Ctrl-C takes the project down and prints the
service map of the session (also written to reports/service-map/dev-loop.html). With
HONEYCOMB_API_KEY set, every export request is also forwarded to Honeycomb.

Exit codes: 0 when the session ended (Ctrl-C or SIGTERM), 1 a fault (a service never answered),
2 bad input (unknown service, stale build/compose.yaml, a dev image not built).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from rich.markup import escape
from rich.text import Text

from builder import naming
from builder.cli.service_map import show_service_map
from builder.cli.terminal import console, errors
from builder.core.clock import utc_timestamp
from builder.core.errors import FaultError, UserError
from builder.engine.client import connect
from builder.engine.compose import ComposeProject, log_lines, stop_following
from builder.engine.containers import PROCESS_RUN_ID, remove_own_containers
from builder.project import Project
from builder.render.compose import compose_file
from builder.render.dockerfiles import stale_files
from builder.report.service_map import MapContext, write_service_map
from builder.spec.service import ServiceSpec
from builder.verify.forward import Forwarder
from builder.verify.live import LiveTraces
from builder.verify.receiver import OtlpReceiver
from builder.verify.service_map import build_service_map
from builder.verify.trace_tree import format_trace_tree

MAP_LABEL = "dev-loop"
READY_TIMEOUT_S = 120.0
POLL_S = 0.25
# build/compose.yaml has the apps export every 500 ms (OTEL_BSP_SCHEDULE_DELAY).
SETTLE_QUIET_S = 1.2
SETTLE_MAX_S = 4.0


def add_parser(sub: Any) -> None:
    dev = sub.add_parser("dev", help="run the dev images with reload and debug tools; trace trees "
                                     "live, the service map on Ctrl-C")
    dev.add_argument("services", nargs="*")
    dev.add_argument("--all", action="store_true", help="every service (the default)")
    dev.add_argument("--no-logs", action="store_true", help="trace trees only, not the apps' logs")
    dev.add_argument("--receiver-port", type=int, default=0,
                     help="the OTLP receiver's port on this machine (default: a free one)")
    dev.add_argument("--forward-to", default=None, metavar="URL",
                     help="with HONEYCOMB_API_KEY set, where telemetry is also sent (default: "
                          "the images' endpoint in templates/otel.yaml, Honeycomb's)")
    dev.set_defaults(run=cmd_dev)


def host_ports(services: list[ServiceSpec]) -> dict[str, int]:
    """Where each service is published: its own port, unless IMAGEWRIGHT_PORT_<SERVICE> says."""
    ports: dict[str, int] = {}
    for service in services:
        variable = naming.port_variable(service.name)
        raw = os.environ.get(variable, "").strip()
        if raw and not (raw.isdigit() and 0 < int(raw) < 65536):
            raise UserError(f"{variable}={raw!r}: not a port number (1..65535)")
        ports[service.name] = int(raw) if raw else service.port
    return ports


def cmd_dev(project: Project, args: argparse.Namespace) -> int:
    # Ctrl-C is how a session ends, even where the shell started this with SIGINT ignored (a
    # background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    services = project.selection(args.services, args.all)
    rendered = compose_file(project.renderer, project.services(), project.build_dir)
    if stale_files([rendered]):
        raise UserError(f"{project.display(rendered.path)} is not current: run `make render`")
    ports = host_ports(services)
    engine = connect()
    missing = [naming.image_ref(s.name, "dev") for s in services
               if engine.image(naming.image_ref(s.name, "dev")) is None]
    if missing:
        raise UserError(f"dev: {', '.join(missing)} not built here: run `make build-dev`")
    api_key = os.environ.get("HONEYCOMB_API_KEY", "")
    with _receiver(args.receiver_port) as receiver, ExitStack() as stack:
        forwarder: Forwarder | None = None
        if api_key:
            forwarder = stack.enter_context(Forwarder(args.forward_to or project.renderer.otel.endpoint))
            receiver.add_export_listener(forwarder.submit)
        compose = ComposeProject(rendered.path, naming.compose_project(project.root), {
            naming.RECEIVER_PORT_VARIABLE: str(receiver.port),
            naming.RUN_VARIABLE: PROCESS_RUN_ID,
            **{naming.port_variable(name): str(port) for name, port in ports.items()}})
        console.rule(f"[bold]dev: {', '.join(s.name for s in services)}")
        printer = TracePrinter(receiver)
        with _project_up(compose, before_down=lambda: _settle(receiver)):
            compose.up([s.name for s in services])
            for service in services:
                ready = (f"http://127.0.0.1:{ports[service.name]}{service.health_path}"
                         if service.health_path else f"tcp://127.0.0.1:{ports[service.name]}")
                compose.wait_until_answers(service.name, ready, READY_TIMEOUT_S)
            _say_ready(project, compose, services, ports, receiver.port, forwarder)
            _loop(printer, None if args.no_logs else compose)
        printer.flush()
        spans = receiver.spans()
    service_map = build_service_map(spans)
    console.rule("[bold]dev: stopped, every container removed")
    show_service_map(service_map, f"service map of this session ({len(spans)} spans)")
    page, _ = write_service_map(project.reports_dir, service_map, MapContext(
        MAP_LABEL, utc_timestamp(), tuple((s.name, naming.image_ref(s.name, "dev")) for s in services),
        len(spans)))
    console.print(f"service map → {project.display(page)}")
    if forwarder is not None:
        stats = forwarder.stats()
        console.print(f"forwarded {stats.forwarded} export request(s) to {stats.endpoint}"
                      + (f"; [red]{stats.failed} failed[/] (last: {escape(stats.last_error)})"
                         if stats.failed else "")
                      + (f"; {stats.dropped} dropped (queue full)" if stats.dropped else ""))
    return 0


@contextmanager
def _receiver(port: int) -> Iterator[OtlpReceiver]:
    if not 0 <= port < 65536:
        raise UserError(f"dev: --receiver-port {port} is not a port number (0..65535)")
    receiver = OtlpReceiver(port=port)
    try:
        receiver.start()
    except OSError as error:
        raise UserError(f"dev: the receiver cannot listen on port {port}: {error.strerror or error}"
                        ) from None
    try:
        yield receiver
    finally:
        receiver.stop()


@contextmanager
def _project_up(compose: ComposeProject, before_down: Callable[[], None]) -> Iterator[None]:
    """The session: ends quietly on Ctrl-C or SIGTERM (the normal way out), and whichever way it
    ends, the project goes down with interrupts held off, so nothing is left running."""
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        with _interrupts_held():
            before_down()
            try:
                compose.down()
            except FaultError as error:
                errors.print(f"[red]docker compose down failed:[/] {escape(error.message)}; "
                             "removing this run's containers directly")
                remove_own_containers(connect())


@contextmanager
def _interrupts_held() -> Iterator[None]:
    previous = {number: signal.signal(number, signal.SIG_IGN)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _say_ready(project: Project, compose: ComposeProject, services: list[ServiceSpec],
               ports: dict[str, int], receiver_port: int, forwarder: Forwarder | None) -> None:
    names = {c.service: c.name for c in compose.containers()}
    for service in services:
        console.print(Text.assemble(
            ("ready ", "green"), (service.name, "bold"),
            f" http://127.0.0.1:{ports[service.name]}  container {names.get(service.name, '?')}  "
            f"source {project.display(service.directory)} → {project.layout.image.app} (reloads)"))
    example = names.get(services[0].name, "<container>")
    console.print(Text(f"debug: docker exec -it {example} bash | docker exec -u 0 {example} strace -p 1 | "
                       f"docker exec -u 0 {example} py-spy dump --pid 1 | "
                       f"docker exec -u 0 {example} tcpdump -i eth0 -n", style="dim"))
    target = f"; also forwarded to {forwarder.endpoint}" if forwarder else ""
    console.print(f"telemetry → imagewright's receiver on port {receiver_port}{target}. "
                  "Each request's trace prints below; [bold]Ctrl-C[/] stops everything and shows "
                  "the service map.")


def _settle(receiver: OtlpReceiver) -> None:
    """Spans of the last requests are still in the apps' export batches when Ctrl-C comes, and a
    stopped container never sends them: wait until nothing has arrived for a batch interval or
    two (at most SETTLE_MAX_S)."""
    deadline = time.monotonic() + SETTLE_MAX_S
    seen, quiet_since = len(receiver.spans()), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < SETTLE_QUIET_S:
        time.sleep(0.1)
        if (count := len(receiver.spans())) != seen:
            seen, quiet_since = count, time.monotonic()


class TracePrinter:
    """Each trace the receiver gets, printed as a tree once it is complete (verify/live.py)."""

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        self.live = LiveTraces()
        self.seen = 0

    def _take(self) -> float:
        spans = self.receiver.spans()
        now = time.monotonic()
        self.live.add(spans[self.seen:], now)
        self.seen = len(spans)
        return now

    def poll(self) -> None:
        for trace in self.live.ready(self._take()):
            console.print(Text(format_trace_tree(trace)))

    def flush(self) -> None:
        self._take()
        for trace in self.live.flush():
            console.print(Text(format_trace_tree(trace)))


def _loop(printer: TracePrinter, compose: ComposeProject | None) -> None:
    """Print each trace as it completes (and the apps' logs), until interrupted."""
    ending = threading.Event()
    if compose is not None:
        logs = compose.follow_logs()
        threading.Thread(target=_print_logs, args=(log_lines(logs), ending), daemon=True,
                         name="compose-logs").start()
    try:
        while True:
            printer.poll()
            time.sleep(POLL_S)
    finally:
        ending.set()  # what `logs` says as it is stopped is not the apps' log
        if compose is not None:
            stop_following(logs)


def _print_logs(lines: Iterator[str], ending: threading.Event) -> None:
    for line in lines:
        if ending.is_set():
            return
        console.print(Text(line, style="dim"))

