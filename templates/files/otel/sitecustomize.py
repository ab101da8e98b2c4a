"""imagewright's in-process OpenTelemetry start: what `opentelemetry-instrument` does, without its
start-up cost.

entry.py puts this folder first on PYTHONPATH and execs the app's command directly (the mechanism
the wrapper itself uses: its own sitecustomize, run by the site module before the app's code). The
wrapper's cost is not the set-up but the search for it, in every start: a second interpreter, a scan
of every installed distribution's entry points, `packaging`-based dependency checks of each
instrumentation. Here the entry points come from the plan resolved at build time (otel_plan.py,
conflicting instrumentations already left out), and then OpenTelemetry's own start-up code runs
unchanged: the distro, the SDK's configurator (`opentelemetry.sdk._configuration`: providers,
processors, exporters, sampler, resource, propagators from the OTEL_* variables, with their
documented meaning) and the instrumentors, minus OTEL_PYTHON_DISABLED_INSTRUMENTATIONS.

Nothing here may stop the app: a missing or unreadable plan falls back to OpenTelemetry's own
discovery (slower, same result), and a failure is logged the way the wrapper logs it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from logging import getLogger
from typing import Any

PLAN_VARIABLE = "IMAGEWRIGHT_OTEL_PLAN"
# Span and log exporters the plan names are made on their first export: the OTLP/HTTP exporters
# import requests, urllib3 and protobuf (about 45 ms of the start, measured in the prod image), which
# no request waits for. The metric exporter is made at start (its reader asks it for its temporality
# and aggregation when made), so with metrics on those modules are loaded at start anyway, and what
# deferring the others still saves is their own modules (19 ms in backend-flask's prod image).
# Tried and left out, measured there (gunicorn, two workers): deferring the metric exporter too
# (20 ms sooner, but +9 MB: a pre-fork master that loads protobuf and requests shares them with
# its workers, which otherwise each load them at their first export), and loading each
# instrumentation when its library is first imported (+18 MB, the same way: the master preloads
# flask, requests, … for all workers; asyncio, which bootstrap instruments in every app, is
# imported by wrapt 2 anyway).
DEFERRED_EXPORTER_BASES = {
    "opentelemetry_traces_exporter": ("opentelemetry.sdk.trace.export", "SpanExporter"),
    "opentelemetry_logs_exporter": ("opentelemetry.sdk._logs.export", "LogRecordExporter"),
}
DEFERRED_EXPORTER = "DeferredExporter"
_deferred_targets: dict[str, tuple[str, str]] = {}

_logger = getLogger("imagewright.otel")


def read_plan(path: str) -> dict[str, list[list[str]]] | None:
    try:
        with open(path, encoding="utf-8") as plan_file:
            plan = json.load(plan_file)
        return {str(group): [[str(name), str(value)] for name, value in entries]
                for group, entries in plan["entry_points"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        _logger.warning("OpenTelemetry start-up plan %s unreadable: discovering entry points", path)
        return None


def use_plan(entry_points_by_group: dict[str, list[list[str]]]) -> None:
    """OpenTelemetry reads every entry point through `opentelemetry.util._importlib_metadata`
    (`from … import entry_points`, bound when each module is imported): served from the plan for its
    groups, before any of those modules is imported. Other groups still get the real scan."""
    from importlib.metadata import EntryPoint, EntryPoints

    from opentelemetry.util import _importlib_metadata as metadata

    planned = EntryPoints(EntryPoint(name, _deferred(group, name, value), group)
                          for group, entries in entry_points_by_group.items()
                          for name, value in entries)
    scan = metadata.entry_points

    def entry_points(**params: Any) -> EntryPoints:
        group = params.get("group")
        if _is_opentelemetry(group):
            return planned.select(**params)
        return scan(**params)

    metadata.entry_points = entry_points  # type: ignore[assignment]


def _deferred(group: str, name: str, value: str) -> str:
    if group not in DEFERRED_EXPORTER_BASES or name == "console":
        return value
    attribute = f"{DEFERRED_EXPORTER}_{len(_deferred_targets)}"
    _deferred_targets[attribute] = (group, value)
    return f"{__name__}:{attribute}"


def __getattr__(attribute: str) -> Any:
    """The deferred exporter classes, made when the SDK's configurator loads them (PEP 562): the
    SDK is importable only once the plan serves its entry points."""
    deferred = _deferred_targets.get(attribute)
    if deferred is None:
        raise AttributeError(attribute)
    exporter_class = deferred_exporter(*deferred)
    globals()[attribute] = exporter_class
    return exporter_class


def deferred_exporter(group: str, target: str) -> type:
    """An exporter of the group's kind that makes the real one (`module:Class`, with the
    configurator's arguments) on the first export, in the batch processor's thread. Its settings
    (endpoint, headers, …) are read from the same environment then as they would be at start."""
    from importlib import import_module
    from importlib.metadata import EntryPoint

    module, base_name = DEFERRED_EXPORTER_BASES[group]
    base = getattr(import_module(module), base_name)

    class DeferredExporter(base):  # type: ignore[misc, valid-type]
        def __init__(self, **arguments: Any) -> None:
            self._arguments = arguments
            self._exporter: Any = None
            self._lock = threading.Lock()

        def _made(self) -> Any:
            with self._lock:
                if self._exporter is None:
                    self._exporter = EntryPoint("", target, "").load()(**self._arguments)
                return self._exporter

        def export(self, batch: Any) -> Any:
            return self._made().export(batch)

        def shutdown(self) -> None:
            if self._exporter is not None:
                self._exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            flush = getattr(self._exporter, "force_flush", None)
            return True if flush is None else bool(flush(timeout_millis))

    DeferredExporter.__qualname__ = f"DeferredExporter[{target}]"
    return DeferredExporter


def _is_opentelemetry(group: object) -> bool:
    return isinstance(group, str) and "opentelemetry" in group


def skip_dependency_checks() -> None:
    """The wrapper's loader finds each instrumentor's distribution (a scan of every distribution's
    metadata) to check its dependencies; the plan holds only instrumentors that passed that check
    at build time, in this very venv."""
    from opentelemetry.instrumentation.auto_instrumentation import _load

    _load._EntryPointDistFinder.dist_for = lambda self, entry_point: None  # type: ignore[method-assign]
    _load.get_dist_dependency_conflicts = lambda dist: None  # type: ignore[assignment]


def is_reload_supervisor(argv: list[str], env: dict[str, str] | os._Environ[str]) -> bool:
    """The supervisor of a reloading dev server only watches files and restarts the server in a
    child process, which starts OpenTelemetry itself: it serves nothing, so nothing is set up in it
    (under the wrapper both set up, one after the other, before the first answer).
    Werkzeug's reloader (`flask run` with --debug, --reload or FLASK_DEBUG) marks its child with
    WERKZEUG_RUN_MAIN=true; uvicorn --reload spawns its child through multiprocessing; Django's
    runserver reloads unless --noreload, and marks its child with RUN_MAIN=true."""
    program = os.path.basename(argv[0]) if argv else ""
    arguments = argv[1:]
    if program == "flask" and "run" in arguments:
        if env.get("WERKZEUG_RUN_MAIN") == "true" or "--no-reload" in arguments:
            return False
        return ("--reload" in arguments or "--debug" in arguments
                or env.get("FLASK_DEBUG", "").lower() in ("1", "true"))
    if program in ("manage.py", "django-admin") and "runserver" in arguments:
        return env.get("RUN_MAIN") != "true" and "--noreload" not in arguments
    return program == "uvicorn" and "--reload" in arguments


def is_multiprocessing_helper(orig_argv: list[str]) -> bool:
    """multiprocessing's own helper processes (the resource tracker that a spawn start method, e.g.
    uvicorn --reload's, starts; the forkserver) run no app code: measured in the fastapi dev image,
    the resource tracker held 48 MB once OpenTelemetry was set up in it."""
    if "-c" not in orig_argv[:-1]:
        return False
    code = orig_argv[orig_argv.index("-c") + 1]
    return code.startswith(("from multiprocessing.resource_tracker import",
                            "from multiprocessing.forkserver import"))


def start() -> None:
    if (is_reload_supervisor(list(getattr(sys, "argv", [])), os.environ)
            or is_multiprocessing_helper(list(getattr(sys, "orig_argv", [])))):
        return
    plan_path = os.environ.get(PLAN_VARIABLE, "")
    entry_points_by_group = read_plan(plan_path) if plan_path else None
    if entry_points_by_group is not None:
        try:
            use_plan(entry_points_by_group)
            skip_dependency_checks()
        except (ImportError, AttributeError):
            _logger.warning("OpenTelemetry start-up plan not usable with this release: "
                            "discovering entry points", exc_info=True)
    # OpenTelemetry's own start: gevent patch, distro, configurator, instrumentors; it logs and
    # swallows its own failures, as under the wrapper. This folder is off PYTHONPATH meanwhile, as
    # the wrapper's is: a subprocess started during set-up must not set up again.
    from opentelemetry.instrumentation.auto_instrumentation import initialize

    python_path = os.environ.get("PYTHONPATH")
    here = os.path.dirname(os.path.abspath(__file__))
    if python_path is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            folder for folder in python_path.split(os.pathsep) if folder != here)
    try:
        initialize()
    finally:
        # Back for the processes the app starts (a reloader's child, spawned workers): each
        # starts the same way.
        if python_path is not None:
            os.environ["PYTHONPATH"] = python_path


if __name__ == "sitecustomize":
    start()
