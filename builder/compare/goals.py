"""Issue 14's goals, read off one comparison: what OpenTelemetry costs at start-up and in memory,
and how large the prod image is. Ratios of figures measured side by side in one run, never timed
tests: the same machine, load and engine for both sides of each ratio."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from builder.compare.measure import Comparison, Measured

MB = 1e6
# OTel on ÷ off, time to the first healthy answer.
HEALTHY_RATIO_GOAL = 1.2
# First span received ÷ healthy without OTel.
FIRST_SPAN_RATIO_GOAL = 1.3
# Idle RSS after the first request, OTel on - off.
MEMORY_DELTA_GOAL_MB = 5.0
# The prod image, uncompressed and as pushed (the issue sets them for backend-flask's distroless).
SIZE_GOAL_MB = 60.0
COMPRESSED_SIZE_GOAL_MB = 20.0


@dataclass(frozen=True)
class Goal:
    column: str  # dev | prod-<flavor>
    metric: str
    value: float | None  # None: not measured (and why is in `note`)
    goal: float  # the value must be at most this
    unit: str  # "x" for a ratio, "MB"
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.goal


def otel_goals(comparison: Comparison) -> tuple[Goal, ...]:
    goals: list[Goal] = []
    for measured in comparison.columns:
        if measured.column.variant not in ("dev", "prod"):
            continue  # the naive baseline is the tutorial's wrapper, not ours
        goals.extend(_startup_goals(measured))
        if measured.column.variant == "prod":
            goals.append(Goal(measured.column.name, "size, uncompressed",
                              round(measured.size_bytes / MB, 1), SIZE_GOAL_MB, "MB"))
            goals.append(Goal(measured.column.name, "size, compressed (as pushed)",
                              round(measured.layers.compressed_bytes / MB, 1),
                              COMPRESSED_SIZE_GOAL_MB, "MB"))
    return tuple(goals)


def _startup_goals(measured: Measured) -> list[Goal]:
    name = measured.column.name
    plain_healthy = measured.startup_plain.timing("healthy_ms")
    otel_healthy = measured.startup_otel.timing("healthy_ms")
    first_span = measured.startup_otel.timing("first_span_ms")
    missing = "not measured (no healthy answer or no span)"
    healthy_ratio = (round(otel_healthy.median / plain_healthy.median, 2)
                     if otel_healthy and plain_healthy else None)
    span_ratio = (round(first_span.median / plain_healthy.median, 2)
                  if first_span and plain_healthy else None)
    otel_memory = [run.memory_bytes for run in measured.startup_otel.runs]
    plain_memory = [run.memory_bytes for run in measured.startup_plain.runs]
    memory_delta = (round((statistics.median(otel_memory) - statistics.median(plain_memory)) / MB, 1)
                    if otel_memory and plain_memory else None)
    return [
        Goal(name, "healthy, OTel on ÷ off (median)", healthy_ratio, HEALTHY_RATIO_GOAL, "x",
             "" if healthy_ratio is not None else missing),
        Goal(name, "first span ÷ healthy without OTel (median)", span_ratio, FIRST_SPAN_RATIO_GOAL,
             "x", "" if span_ratio is not None else missing),
        Goal(name, "idle RSS after the first request, OTel on - off (median)", memory_delta,
             MEMORY_DELTA_GOAL_MB, "MB", "" if memory_delta is not None else missing),
    ]
