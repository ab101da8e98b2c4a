"""Start-up as users feel it: container create → running → first healthy answer (→ first span),
with OpenTelemetry and without, and with only some of its pillars; and where interpreter start-up
goes under the wrapper."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from builder.engine.client import Engine
from builder.engine.containers import run_to_completion, running_service, wait_until_answers
from builder.spec.layout import ImagePaths
from builder.spec.service import ServiceSpec
from builder.verify.receiver import OtlpReceiver
from builder.verify.spans import otel_env, send


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

    def timing(self, name: str) -> Timing | None:
        values = [getattr(run, name) for run in self.runs if getattr(run, name) is not None]
        return Timing(tuple(values)) if values else None


def measure_startup(engine: Engine, spec: ServiceSpec, variant: str, image: str,
                    runs: int, otel: bool, on_run: Callable[[int], None] = lambda _: None, *,
                    mode: PillarMode | None = None) -> StartupStats:
    """Container create → running → first healthy answer (→ first span, with OTel), `runs` times.

    Without OTel the app is started directly, bypassing the entrypoint: no wrapper, no SDK import.
    With a `mode`, its environment goes on top of the image's (only some pillars on).
    """
    results: list[StartupRun] = []
    first_request = next((s for s in spec.smoke if s.route and s.status < 400), None)
    for index in range(runs):
        with OtlpReceiver() as receiver:
            command = list(spec.command_for(variant))
            env = {**otel_env(receiver), **(mode.env if mode else {})}
            options = ({"env": env} if otel
                       else {"entrypoint": command[:1], "command": command[1:], "env": {}})
            with running_service(engine, image, spec.port, hardened=variant == "prod",
                                 purpose="measure", **options) as running:
                healthy = wait_until_answers(running, spec.health_path, timeout=60)
                first_span = None
                if otel and first_request:
                    send(running, first_request)
                    receiver.wait_for_spans(bool, timeout=15)
                    first_span = receiver.first_span_at()
                elif first_request:
                    send(running, first_request)
                memory = running.memory_usage()
            start = running.created_at
            results.append(StartupRun(
                running_ms=(running.running_at - start) * 1000,
                healthy_ms=(healthy - start) * 1000,
                first_span_ms=(first_span - start) * 1000 if first_span else None,
                memory_bytes=memory))
        on_run(index + 1)
    name = mode.name if mode and otel else "otel" if otel else "plain"
    return StartupStats(name, tuple(results))


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
