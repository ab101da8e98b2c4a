"""Build step of the venv stage: resolve OpenTelemetry's entry points once, into the plan that the
image's sitecustomize (otel/sitecustomize.py) loads at every start.

`opentelemetry-instrument` does this work in every container start: it scans the entry points of
every installed distribution (twice: in the wrapper and in the app's interpreter) and checks each
instrumentation's dependencies with `packaging`. The venv is final after the build, so the answer
is the same every time: it is computed here, with the same functions, and written as JSON:

    {"entry_points": {group: [[name, value], ...]}, "conflicts": {instrumentation: reason}}

Only groups OpenTelemetry reads are kept; an instrumentation whose library is missing or at a
version it does not support is left out, as the wrapper would skip it.
Usage: python otel_plan.py OUTPUT.json
"""

import json
import re
import sys
from importlib.metadata import distributions

from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

INSTRUMENTOR_GROUP = "opentelemetry_instrumentor"


def is_opentelemetry_group(group: str) -> bool:
    # opentelemetry_propagator, …_traces_exporter, …_context, _opentelemetry_opamp, …
    return "opentelemetry" in group


def plan() -> dict:
    groups: dict = {}
    conflicts: dict = {}
    seen: set = set()
    # importlib.metadata.entry_points() keeps the first distribution of each normalized name (the
    # one earlier on sys.path): the same here, in the same order.
    for dist in distributions():
        name = re.sub(r"[-_.]+", "_", (dist.metadata["Name"] or "").lower())
        if name in seen:
            continue
        seen.add(name)
        for entry_point in dist.entry_points:
            if not is_opentelemetry_group(entry_point.group):
                continue
            if entry_point.group == INSTRUMENTOR_GROUP:
                conflict = get_dist_dependency_conflicts(dist)
                if conflict:
                    conflicts[entry_point.name] = str(conflict)
                    continue
            groups.setdefault(entry_point.group, []).append([entry_point.name, entry_point.value])
    return {"entry_points": groups, "conflicts": conflicts}


if __name__ == "__main__":
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(plan(), out, indent=1, sort_keys=True)
        out.write("\n")
