"""Start-up as users feel it: container create → running → first healthy answer (→ first span),
with OpenTelemetry and without, and with only some of its pillars; and where interpreter start-up
goes under the wrapper."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from builder.engine.client import Engine
from builder.engine.containers import (
    NotReadyError,
    run_to_completion,
    running_service,
    wait_until_ready,
)
from builder.spec.layout import ImagePaths
from builder.spec.service import ServiceSpec
from builder.verify.ownership import OtelSetup, judge_otel_setup
from builder.verify.receiver import OtlpReceiver
from builder.verify.spans import otel_env, send

# OTel off: the command without the wrapper, and the SDK disabled for an app that loads it itself.
OTEL_OFF = {"OTEL_SDK_DISABLED": "true"}
# How long an OTel-off run listens for spans that should not come.
LEAK_WAIT = 1.5


@dataclass(frozen=True)
class Timing:
    samples_ms: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    def summary(self) -> dict[str, float | list[float]]:
        return {"median_ms": round(self.median, 1), "min_ms": round(min(self.samples_ms), 1),
                "max_ms": round(max(self.samples_ms), 1),
                "samples_ms": [round(s, 1) for s in self.samples_ms]}


@dataclass(frozen=True)
class StartupRun:
    running_ms: float
    healthy_ms: float
    first_span_ms: float | None
    memory_bytes: int


@dataclass(frozen=True)
class PillarMode:
    """Some of the three pillars on, the others switched off the way users do it."""

    name: str  # as reports key it
    label: str  # as tables show it
    env: Mapping[str, str]


# What each pillar costs, step by step: "otel" (all three, the image's default) and "plain" (no
# wrapper, no SDK) bracket these. The instrumentations still load with an exporter off (psutil and
# the system-metrics instrumentation with metrics off, the logging handler with logs off), so a
# step measures what exporting that pillar adds: what switching it off saves.
TRACES_ONLY = PillarMode("traces", "traces only",
                         {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"})
TRACES_AND_METRICS = PillarMode("traces+metrics", "traces + metrics", {"OTEL_LOGS_EXPORTER": "none"})
PILLAR_MODES = (TRACES_ONLY, TRACES_AND_METRICS)


@dataclass(frozen=True)
class StartupStats:
    mode: str  # "otel" | "plain" | a PillarMode's name
    runs: tuple[StartupRun, ...] = field(default=())
    # "plain" only: spans that arrived although OpenTelemetry was off (the app cannot be turned off)
    leaked_spans: int = 0
    problem: str = ""  # why the runs stopped short (the service never became ready)
    # "otel" only: who set OpenTelemetry up, as the first run showed it
    otel_setup: OtelSetup | None = None

    def timing(self, name: str) -> Timing | None:
        values = [getattr(run, name) for run in self.runs if getattr(run, name) is not None]
        return Timing(tuple(values)) if values else None

    @property
    def really_off(self) -> bool:
        return self.mode == "plain" and not self.leaked_spans


def measure_startup(engine: Engine, spec: ServiceSpec, variant: str, image: str,
                    runs: int, otel: bool, on_run: Callable[[int], None] = lambda _: None, *,
                    own_command: bool = True, span_timeout: float = 15,
                    otel_mode: str | None = None, mode: PillarMode | None = None) -> StartupStats:
    """Container create → running → ready (→ first span, with OTel), `runs` times.

    Without OTel the app is started directly (`own_command`: the spec's command instead of the
    entrypoint: no wrapper, no SDK import) with OTEL_SDK_DISABLED=true, and the first run listens
    for spans anyway: an app that sets OpenTelemetry up itself and ignores the switch shows up as
    `leaked_spans`. With a `mode`, its environment goes on top of the image's (only some pillars
    on). A service that never becomes ready ends the runs with `problem` set.
    """
    results: list[StartupRun] = []
    first_request = next((s for s in spec.smoke if s.route and s.status < 400), None)
    leaked = 0
    setup: OtelSetup | None = None
    name = mode.name if mode and otel else "otel" if otel else "plain"
    for index in range(runs):
        with OtlpReceiver() as receiver:
            command = list(spec.command_for(variant))
            env = {**otel_env(receiver), **(mode.env if mode else {})}
            options: dict[str, Any] = {"env": env if otel else {**otel_env(receiver), **OTEL_OFF}}
            if not otel and own_command:
                options.update(entrypoint=command[:1], command=command[1:])
            try:
                with running_service(engine, image, spec.port, hardened=variant == "prod",
                                     purpose="measure", **options) as running:
                    healthy = wait_until_ready(running, spec.health_path, timeout=60)
                    first_span = None
                    if first_request:
                        send(running, first_request)
                    if otel and first_request:
                        try:
                            receiver.wait_for_spans(bool, timeout=span_timeout)
                            first_span = receiver.first_span_at()
                        except TimeoutError:
                            span_timeout = min(span_timeout, 3)  # no wrapper, nothing to wait for
                    elif index == 0 and first_request:
                        try:
                            leaked = len(receiver.wait_for_spans(bool, timeout=LEAK_WAIT))
                        except TimeoutError:
                            leaked = 0
                    memory = running.memory_usage()
                    if otel and index == 0 and mode is None:
                        said = "\n".join([running.logs(tail=400),
                                          *(str(record.body) for record in receiver.logs())])
                        setup = judge_otel_setup(otel_mode or spec.otel.mode, said,
                                                 receiver.spans())
            except NotReadyError as error:
                return StartupStats(name, tuple(results), leaked, f"{error.what}: {error.reason}",
                                    setup)
            start = running.created_at
            results.append(StartupRun(
                running_ms=(running.running_at - start) * 1000,
                healthy_ms=(healthy - start) * 1000,
                first_span_ms=(first_span - start) * 1000 if first_span else None,
                memory_bytes=memory))
        on_run(index + 1)
    return StartupStats(name, tuple(results), leaked, "", setup)


@dataclass(frozen=True)
class ImportCost:
    package: str
    self_ms: float


def import_costs(engine: Engine, image: str, paths: ImagePaths, top: int = 10) -> list[ImportCost]:
    """Where interpreter start-up goes with OpenTelemetry started in-process, as the entrypoint
    starts it (the image's sitecustomize, with the image's plan; `python -X importtime`)."""
    script = ("import runpy; "
              f"runpy.run_path({paths.runtime + '/otel/sitecustomize.py'!r}, run_name='sitecustomize')")
    code, output = run_to_completion(engine, image, [paths.python, "-X", "importtime", "-c",
                                                     script])
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [part.strip() for part in line.split(":", 1)[1].split("|")]
        if not parts[0].isdigit():
            continue
        package = parts[2].split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(parts[0]) / 1000
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:top]
    return [ImportCost(name, round(ms, 1)) for name, ms in ranked] if code == 0 else []


def protobuf_backend(engine: Engine, image: str, paths: ImagePaths) -> str:
    code, output = run_to_completion(engine, image, [
        paths.python, "-c",
        "from google.protobuf.internal import api_implementation as a; print(a.Type())"])
    return output.strip().splitlines()[-1] if code == 0 and output.strip() else "unknown"
