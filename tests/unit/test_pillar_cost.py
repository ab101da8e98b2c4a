"""What each pillar costs, as compare and bench report it: pure, on hand-made start-up runs."""

from __future__ import annotations

import json
from dataclasses import replace

from builder.compare.bench import Bench, BuildTiming
from builder.compare.measure import Comparison, Measured, pillar_runs, ratios, steps_for
from builder.report.compare import bench_document, compare_json, markdown
from builder.report.compare_table import pillar_lines, pillar_rows, table
from builder.verify.startup import (
    PILLAR_MODES,
    TRACES_AND_METRICS,
    TRACES_ONLY,
    StartupRun,
    StartupStats,
)
from tests.unit.test_compare_report import MACHINE, measured

MB = 1_000_000


def stats(mode: str, healthy: float, memory: int, runs: int = 3) -> StartupStats:
    return StartupStats(mode, tuple(StartupRun(100, healthy + i, healthy + 100 + i, memory + i)
                                    for i in range(runs)))


def with_pillars(m: Measured) -> Measured:
    return replace(m, startup_otel=stats("otel", 540, 54 * MB, 5),
                   startup_plain=stats("plain", 300, 40 * MB, 5),
                   startup_pillars=(stats(TRACES_ONLY.name, 500, 50 * MB),
                                    stats(TRACES_AND_METRICS.name, 530, 53 * MB)))


def comparison(*columns: Measured) -> Comparison:
    return Comparison("svc", "2026-11-25T04:00:00Z", MACHINE, 5, columns, (), ratios(columns), (),
                      1.0)


def test_each_pillar_adds_to_the_one_before() -> None:
    prod = with_pillars(measured("prod-distroless", "prod", 70 * MB, python=40, healthy=600))
    rows = {row.label: [cell.text for cell in row.cells] for row in pillar_rows(comparison(prod))}
    assert rows == {
        "Create → first healthy answer, traces only": ["501 ms (+199 ms)"],
        "Create → first healthy answer, + metrics": ["531 ms (+30 ms)"],
        "Create → first healthy answer, + logs (= OTel on)": ["542 ms (+11 ms)"],
        "Idle memory (RSS), traces only": ["50.0 MB (+10.0 MB)"],
        "Idle memory (RSS), + metrics": ["53.0 MB (+3.0 MB)"],
        "Idle memory (RSS), + logs (= OTel on)": ["54.0 MB (+1.0 MB)"],
    }
    section = pillar_rows(comparison(prod))[0].section
    assert section == "Per pillar (traces only, + metrics: median of 3; ± vs the row before)"
    assert pillar_lines(comparison(prod)) == [
        "prod-distroless: healthy (ms) all off 302 → traces only 501 → + metrics 531 → "
        "+ logs (= OTel on) 542; idle RSS all off 40.0 MB → traces only 50.0 MB → "
        "+ metrics 53.0 MB → + logs (= OTel on) 54.0 MB"]


def test_a_cheaper_step_shows_a_minus_and_an_unmeasured_one_a_dash() -> None:
    prod = with_pillars(measured("prod-distroless", "prod", 70 * MB, python=40, healthy=600))
    prod = replace(prod, startup_pillars=(stats(TRACES_ONLY.name, 500, 50 * MB),
                                          stats(TRACES_AND_METRICS.name, 490, 49 * MB)))
    bare = measured("dev", "dev", 300 * MB, python=80, healthy=900)  # no partial modes measured
    rows = {row.label: [cell.text for cell in row.cells]
            for row in pillar_rows(comparison(prod, bare))}
    assert rows["Create → first healthy answer, + metrics"] == ["491 ms (-10 ms)", "—"]
    assert rows["Create → first healthy answer, traces only"][1] == "—"
    same = replace(prod, startup_otel=stats("otel", 489.2, 49 * MB, 5))  # 491 → 491.2 ms
    assert pillar_rows(comparison(same))[2].cells[0].text == "491 ms (±0 ms)"
    assert rows["Create → first healthy answer, + logs (= OTel on)"][1] == "901 ms"


def test_reports_carry_every_pillar_step() -> None:
    prod = with_pillars(measured("prod-distroless", "prod", 70 * MB, python=40, healthy=600))
    compared = comparison(prod)
    per_pillar = json.loads(compare_json(compared))["columns"][0]["startup"]["per_pillar"]
    assert list(per_pillar) == ["off", "traces", "traces+metrics", "traces+metrics+logs"]
    assert [step["healthy"]["median_ms"] for step in per_pillar.values()] == [302, 501, 531, 542]
    assert per_pillar["traces"]["runs"] == 3 and per_pillar["traces"]["idle_memory_bytes"] == 50 * MB + 1
    assert "| Idle memory (RSS), + metrics | 53.0 MB (+3.0 MB) |" in markdown(compared)
    assert [row.label for row in table(compared)][-6:] == [row.label for row in pillar_rows(compared)]
    bench = Bench("2026-11-25T04:00:00Z", MACHINE, 5, (compared,), BuildTiming("a", 1.0, ()),
                  BuildTiming("a", 1.0, ()), "svc/app.py", True, (), "")
    assert bench_document(bench)["per_pillar"]["svc"]["prod-distroless"] == per_pillar


def test_partial_modes_cost_few_runs_and_are_counted_in_progress() -> None:
    assert [pillar_runs(runs) for runs in (1, 3, 5, 10)] == [1, 3, 3, 3]
    assert steps_for(3, 5) - steps_for(3, 1) == 3 * (2 * 4 + len(PILLAR_MODES) * 2)
