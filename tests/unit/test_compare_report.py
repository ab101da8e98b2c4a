"""compare's pure parts, no engine: the report writers, waste, parity and ratios."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from builder.compare.bench import Bench, BuildAll, BuildStep, BuildTiming, ScanTiming
from builder.compare.measure import (
    Column,
    Comparison,
    FindingCount,
    Machine,
    Measured,
    NotMeasured,
    Packages,
    Security,
    check_parity,
    parse_lock,
    ratios,
)
from builder.inspect.checks import evaluate
from builder.inspect.layers import (
    Layer,
    LayerContent,
    LayerReport,
    Waste,
    measure_waste,
    readable_instruction,
)
from builder.inspect.surface import AttackSurface
from builder.project import Project
from builder.report.compare import bench_document, compare_json, markdown
from builder.report.compare_html import SIZE_COLOURS, STARTUP_COLOURS, html_page
from builder.report.compare_table import human_bytes, table
from builder.spec.layout import load_layout
from builder.verify.ownership import judge_otel_setup
from builder.verify.startup import StartupRun, StartupStats

MACHINE = Machine("Test CPU", 2, 8 << 30, "Debian 12", "6.1", "20.10.24", "overlay2")
LOCK_FILE = load_layout(Path(__file__).resolve().parents[2] / "templates").image.lock_file
LOCK = "Flask==3.1.3\nopentelemetry_api==1.45.1\nzope.interface==7.0\n"


def surface(image: str, *, root: bool = False, shells: tuple[str, ...] = ()) -> AttackSurface:
    return AttackSurface(image, "" if root else "65532:65532", root, shells, (), (), False, (), (),
                         (), ("4567/tcp",))


def startup(healthy: float, span: float | None) -> StartupStats:
    runs = tuple(StartupRun(100 + i, healthy + i, None if span is None else span + i, 50_000_000)
                 for i in range(3))
    return StartupStats("otel" if span else "plain", runs)


def measured(name: str, variant: str, size: int, *, python: int, healthy: float,
             shells: tuple[str, ...] = (), root: bool = False,
             vulnerabilities: FindingCount | None = None) -> Measured:
    column = Column(name, variant, name.removeprefix("prod-") if variant == "prod" else "",
                    f"svc:{name}", f"sha256:{name}", "ubuntu:24.04")
    layers = (Layer(0, "sha256:a", "(base: Imported from -)", "ubuntu:24.04", size // 2, size // 6, 10),
              Layer(1, "sha256:b", "RUN apt-get install -y python3", "", size // 2, size // 6, 20))
    not_run = FindingCount(None, (), "not run (`make scan SERVICE=svc` writes scan.json)")
    return Measured(
        column, size, LayerReport(column.image, layers, Waste(1234, 0.99)),
        Packages(python * 2, python, "Trivy SBOM made by compare", "3.12.3"),
        Security("", vulnerabilities or not_run, FindingCount(0), FindingCount(2),
                 surface(column.image, root=root, shells=shells)),
        startup(healthy, healthy + 150), startup(healthy / 2, None))


@pytest.fixture
def comparison() -> Comparison:
    columns = (
        measured("dev", "dev", 285_000_000, python=79, healthy=1800, shells=("/usr/bin/bash",)),
        measured("prod-distroless", "prod", 70_000_000, python=40, healthy=600,
                 vulnerabilities=FindingCount(3, (("CRITICAL", 0), ("HIGH", 1), ("MEDIUM", 2)))),
        measured("naive", "naive", 921_000_000, python=42, healthy=620, shells=("/bin/sh",),
                 root=True),
    )
    parity = (check_parity("prod-distroless", parse_lock(LOCK), parse_lock(LOCK), "3.12.3", "3.12.3",
                           lock_file=LOCK_FILE),)
    return Comparison("svc", "2026-11-25T04:00:00Z", MACHINE, 3, columns, parity, ratios(columns),
                      (("alpine", "no image svc:prod-alpine on this machine"),), 12.5)


def test_table_has_one_cell_per_column_in_every_row(comparison: Comparison) -> None:
    rows = table(comparison)
    labels = [row.label for row in rows]
    for expected in ("Size, uncompressed (docker image inspect)",
                     "Size, compressed (gzip'd layers, as pushed)", "Layers", "Largest layer",
                     "Python packages (SBOM)", "Parity with dev (packages, Python)",
                     "Vulnerabilities (Trivy)", "Shell present", "Runs as root",
                     "Create → first span received, OTel on"):
        assert expected in labels
    assert all(len(row.cells) == 3 for row in rows)
    cells = {row.label: [cell.text for cell in row.cells] for row in rows}
    assert cells["Size, uncompressed (docker image inspect)"] == ["285.0 MB", "70.0 MB", "921.0 MB"]
    assert cells["Vulnerabilities (Trivy)"][1] == "3 (C 0 · H 1 · M 2)"
    assert cells["Vulnerabilities (Trivy)"][0] == "not run (`make scan SERVICE=svc` writes scan.json)"
    assert cells["Create → first healthy answer, OTel on"][1] == "601 ms (600-602)"
    assert cells["Shell present"] == ["yes (/usr/bin/bash)", "no", "yes (/bin/sh)"]
    assert cells["Parity with dev (packages, Python)"][0] == "reference"
    assert cells["Parity with dev (packages, Python)"][1].startswith("✔ all 3 packages")


def test_only_prod_hardening_gaps_and_drift_are_findings(comparison: Comparison) -> None:
    flagged = {(row.label, index) for row in table(comparison)
               for index, cell in enumerate(row.cells) if cell.finding}
    # prod's HIGH vulnerability is one; the naive image running as root is the baseline, not one.
    assert flagged == {("Vulnerabilities (Trivy)", 1)}


def test_parity_drift_is_red_everywhere(comparison: Comparison) -> None:
    drifted = check_parity("prod-distroless", parse_lock(LOCK),
                           parse_lock(LOCK.replace("3.1.3", "3.1.2") + "extra==1\n"),
                           "3.12.3", "3.11.9", lock_file=LOCK_FILE)
    broken = replace(comparison, parity=(drifted,))
    assert not drifted.ok and not drifted.python_matches
    assert drifted.different == (("flask", "3.1.2", "3.1.3"),)
    assert drifted.missing_in_dev == ("extra==1",)
    [row] = [row for row in table(broken) if row.label.startswith("Parity")]
    assert row.cells[1].finding and row.cells[1].text.startswith("✘ Python 3.11.9 ≠ dev 3.12.3")
    assert "| **✘ Python 3.11.9" in markdown(broken)
    assert '<td class="finding">✘ Python 3.11.9' in html_page(broken)


def test_parity_without_a_lock_cannot_pass() -> None:
    parity = check_parity("prod-x", None, {"a": "1"}, "3.12.3", "3.12.3", lock_file=LOCK_FILE)
    assert not parity.ok and "dev has no /opt/venv/requirements.lock" in parity.problem


def test_lock_parsing_normalises_names() -> None:
    assert parse_lock("Zope.Interface==7.0\nfoo_bar @ file:///x\n# comment\n-e .\n") == {
        "zope-interface": "7.0", "foo-bar": "file:///x"}


def test_ratios_are_prod_over_dev_and_over_naive(comparison: Comparison) -> None:
    found = {(r.metric, r.numerator, r.denominator): r.value for r in comparison.ratios}
    assert found[("size, uncompressed", "prod-distroless", "dev")] == round(70 / 285, 3)
    assert found[("size, uncompressed", "prod-distroless", "naive")] == round(70 / 921, 3)
    assert found[("startup to healthy, OTel on (median)", "prod-distroless", "dev")] == round(601 / 1801, 3)
    assert found[("packages, OS + Python", "prod-distroless", "naive")] == round(120 / 126, 3)
    assert {r.numerator for r in comparison.ratios} == {"prod-distroless"}


def test_json_document(comparison: Comparison) -> None:
    document = json.loads(compare_json(comparison))
    assert document["schema"] == "imagewright.compare/1"
    assert [c["name"] for c in document["columns"]] == ["dev", "prod-distroless", "naive"]
    prod = document["columns"][1]
    assert prod["size"]["compressed_bytes"] == 2 * (70_000_000 // 6)
    assert prod["security"]["vulnerabilities"] == {
        "status": "ok", "total": 3, "by_severity": {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2}}
    assert document["columns"][0]["security"]["vulnerabilities"]["status"] == "not-run"
    assert prod["startup"]["with_opentelemetry"]["first_span"]["median_ms"] == 751
    assert document["parity"][0]["ok"] is True
    assert document["skipped_flavors"] == [{"flavor": "alpine",
                                            "reason": "no image svc:prod-alpine on this machine"}]


def test_markdown_lists_reasons_and_layers(comparison: Comparison) -> None:
    text = markdown(comparison)
    assert text.startswith("# svc: dev vs prod-distroless vs naive")
    assert "| | dev | prod-distroless | naive |" in text
    assert "## Ratios" in text and "| size, uncompressed | x0.25 | x0.08 |" in text
    assert "[from ubuntu:24.04] (base: Imported from -)" in text
    assert "## Not run" in text and "prod flavor `alpine`" in text


def test_html_is_self_contained_with_two_bar_charts(comparison: Comparison) -> None:
    page = html_page(comparison)
    assert "<script" not in page and " src=" not in page and " href=" not in page
    assert "url(" not in page and "@import" not in page
    for chart in ("size-chart", "startup-chart"):
        assert len(re.findall(f'<svg id="{chart}"', page)) == 1
    fills = re.findall(r'<rect x="150"[^>]* fill="(#[0-9a-f]{6})"', page)
    # One bar per image and series: 3 images x (2 size + 3 startup series).
    assert sorted(set(fills)) == sorted({*SIZE_COLOURS, *STARTUP_COLOURS})
    assert len(fills) == 3 * 5
    widths = [float(w) for w in re.findall(r'<rect x="150" y="[\d.]+" width="([\d.]+)"[^>]* '
                                           f'fill="{SIZE_COLOURS[0]}"', page)]
    assert widths[2] == max(widths) and widths[1] < widths[0] < widths[2]
    assert "#b91c1c" not in " ".join(fills), "the findings' red is not a bar colour"


def test_human_bytes() -> None:
    assert [human_bytes(v) for v in (None, 0, 999, 1_500, 2_500_000)] == [
        "—", "0 B", "999 B", "1.5 kB", "2.5 MB"]


# ---- layers ---------------------------------------------------------------------------------------

def test_waste_counts_every_copy_of_a_rewritten_or_removed_file() -> None:
    waste = measure_waste([
        LayerContent((("etc/config", 100), ("blob", 1000), ("keep", 5), ("d/x", 40), ("d/y", 60))),
        LayerContent((("etc/config", 120),), removed=("blob",)),
        LayerContent((), removed=("d",)),
    ])
    # config: 100 + 120; blob: 1000 + 0 (removed); d/x, d/y removed with their directory.
    assert waste.bytes == 220 + 1000 + 100
    assert [(p.path, p.bytes, p.layers) for p in waste.top][:2] == [("/blob", 1000, 2),
                                                                    ("/etc/config", 220, 2)]
    assert waste.efficiency == round((100 + 0 + 5 + 0 + 0) / (220 + 1000 + 5 + 100), 4)


def test_opaque_directory_hides_lower_layers_only() -> None:
    waste = measure_waste([
        LayerContent((("var/lib/a", 10), ("var/lib/b", 20))),
        LayerContent((("var/lib/c", 30),), opaque=("var/lib",)),
    ])
    assert waste.bytes == 30
    assert measure_waste([LayerContent((("a", 1),))]).efficiency == 1.0


def test_instructions_read_like_a_dockerfile() -> None:
    assert readable_instruction("/bin/sh -c #(nop)  ENV A=1") == "ENV A=1"
    assert readable_instruction("/bin/sh -c apt-get update  && x") == "RUN apt-get update && x"
    assert readable_instruction("", "Imported from -") == "(base: Imported from -)"


# ---- bench.json -----------------------------------------------------------------------------------

def test_bench_document(comparison: Comparison) -> None:
    steps = (BuildStep(1, "FROM x", True), BuildStep(2, "COPY app.py /app/app.py", False))
    bench = Bench("2026-11-25T04:00:00Z", MACHINE, 3, (comparison,),
                  BuildTiming("svc-bench:prod-distroless", 80.0, steps),
                  BuildTiming("svc-bench:prod-distroless", 4.0, steps), "svc/app.py", True,
                  (ScanTiming("svc dev", "svc:dev", 2.5),), "")
    document = bench_document(bench)
    assert document["toolkit"]["warm_rebuild"]["cached_steps"] == 1
    assert document["toolkit"]["warm_rebuild"]["rebuilt_steps"] == ["COPY app.py /app/app.py"]
    assert document["toolkit"]["warm_rebuild"]["dependency_layers_cached"] is True
    assert document["toolkit"]["scan"]["images"][0]["seconds"] == 2.5
    assert document["ratios"]["svc"][0]["metric"] == "size, uncompressed"
    goals = {(goal["column"], goal["metric"]): goal for goal in document["goals"]["svc"]}
    assert {column for column, _ in goals} == {"dev", "prod-distroless"}  # never the baseline
    healthy = goals["prod-distroless", "healthy, OTel on ÷ off (median)"]
    # Medians: 601 ms with OTel (600, 601, 602) over 301 ms without (300, 301, 302).
    assert (healthy["value"], healthy["goal"], healthy["met"]) == (2.0, 1.2, False)
    span = goals["prod-distroless", "first span ÷ healthy without OTel (median)"]
    assert (span["value"], span["goal"], span["met"]) == (round(751 / 301, 2), 1.3, False)
    memory = goals["dev", "idle RSS after the first request, OTel on - off (median)"]
    assert (memory["value"], memory["unit"], memory["met"]) == (0.0, "MB", True)
    size = goals["prod-distroless", "size, uncompressed"]
    assert (size["value"], size["goal"], size["met"]) == (70.0, 60.0, False)
    assert goals["prod-distroless", "size, compressed (as pushed)"]["value"] == round(
        2 * (70_000_000 // 6) / 1e6, 1)
    assert ("dev", "size, uncompressed") not in goals


def test_bench_document_build_all(comparison: Comparison) -> None:
    steps = (BuildStep(1, "FROM x", True),)
    cold, warm = (BuildTiming("svc-bench:prod-distroless", seconds, steps) for seconds in (80.0, 2.0))
    every = BuildAll(("svc dev", "svc prod-distroless"), 200.0, 150.0, 90.0, "six==1.17.0", 30.0, 9.0)
    document = bench_document(Bench("2026-11-25T04:00:00Z", MACHINE, 3, (comparison,), cold, warm,
                                    "svc/app.py", True, (), "no DB", every))
    build_all = document["toolkit"]["build_all"]
    assert (build_all["legacy_s"], build_all["buildkit_s"]) == (200.0, 90.0)
    assert build_all["ratio_buildkit_over_legacy"] == 0.45 and build_all["goal_met"] is True
    assert build_all["warm_rebuild_over_cold"] == 0.025
    assert build_all["dependency_added"] == {"requirement": "six==1.17.0", "legacy_s": 30.0,
                                             "buildkit_cache_mount_s": 9.0}
    slow = replace(every, buildkit_s=120.0)
    document = bench_document(Bench("2026-11-25T04:00:00Z", MACHINE, 3, (comparison,), cold, warm,
                                    "svc/app.py", True, (), "no DB", slow))
    assert document["toolkit"]["build_all"]["goal_met"] is False
    document = bench_document(Bench("2026-11-25T04:00:00Z", MACHINE, 3, (comparison,), cold, warm,
                                    "svc/app.py", True, (), "no DB", None, "no buildx found"))
    assert document["toolkit"]["build_all"] == {"status": "not-run", "reason": "no buildx found"}


def test_promises_row_names_each_broken_check_everywhere(comparison: Comparison,
                                                          project: Project) -> None:
    dev, prod, naive = comparison.columns
    distroless = project.catalog.flavors["distroless"].promises
    kept = evaluate(distroless, prod.security.surface, {"User": "65532:65532"})
    shelled = replace(prod.security.surface, shells=("/bin/sh",))
    broken_prod = replace(prod, security=replace(prod.security, surface=shelled),
                          promises=tuple(evaluate(distroless, shelled, {"User": "65532:65532"})))
    columns = (replace(dev, promises=tuple(kept)), broken_prod, naive)
    checked = replace(comparison, columns=columns)
    [row] = [row for row in table(checked) if row.label.startswith("Promises")]
    assert [cell.text for cell in row.cells] == [
        f"✔ all {len(kept)} hold",
        f"✘ 1 of {len(kept)} broken: IW-SHELL-001 (shell: promised no, found yes (/bin/sh))",
        "— (promises nothing: a baseline)",
    ]
    assert [cell.finding for cell in row.cells] == [False, True, False]
    assert "| **✘ 1 of 9 broken: IW-SHELL-001" in markdown(checked)
    assert '<td class="finding">✘ 1 of 9 broken: IW-SHELL-001' in html_page(checked)
    promises = json.loads(compare_json(checked))["columns"][1]["security"]["promises"]
    assert [(p["id"], p["passed"]) for p in promises if not p["passed"]] == [("IW-SHELL-001", False)]
    assert len(promises) == 9


# ---- your image today, and whether OpenTelemetry is really off ----------------------------------

def test_yours_is_a_reference_for_prod(comparison: Comparison) -> None:
    yours = measured("yours", "yours", 600_000_000, python=30, healthy=700, root=True)
    found = {(r.metric, r.numerator, r.denominator): r.value
             for r in ratios((*comparison.columns, yours))}
    assert found[("size, uncompressed", "prod-distroless", "yours")] == round(70 / 600, 3)


def test_yours_that_cannot_be_built_here_is_a_column_saying_why(comparison: Comparison) -> None:
    why = ("its FROM python:3.12-slim is not available on this machine: it is not present "
           "locally, cannot be pulled and has no bootstrap recipe")
    missing = replace(comparison, unmeasured=(NotMeasured("yours", "svc:yours", why),))
    rows = table(missing)
    assert all(len(row.cells) == 4 for row in rows)
    cells = {row.label: row.cells[3].text for row in rows}
    assert cells["Image"] == f"svc:yours: not run ({why})"
    assert cells["Size, uncompressed (docker image inspect)"] == "not run"
    text = markdown(missing)
    assert "| | dev | prod-distroless | naive | yours |" in text
    assert f"- `yours` (svc:yours): {why}" in text
    assert "<th>yours</th>" in html_page(missing)
    assert json.loads(compare_json(missing))["not_measured"] == [
        {"name": "yours", "image": "svc:yours", "reason": why}]


def test_otel_off_that_still_exports_is_a_finding(comparison: Comparison) -> None:
    dev, prod, naive = comparison.columns
    leaky = replace(prod, startup_plain=replace(prod.startup_plain, leaked_spans=3))
    rows = {row.label: row.cells for row in table(replace(comparison, columns=(dev, leaky, naive)))}
    off = rows["OTel off really off (no span arrives)"]
    assert off[0].text == "yes (no wrapper, OTEL_SDK_DISABLED=true; no span arrived)"
    assert off[1].finding and off[1].text == ("✘ cannot be turned off: 3 span(s) arrived with no "
                                              "wrapper, OTEL_SDK_DISABLED=true")


def test_an_apps_dead_otel_setup_is_a_finding(comparison: Comparison) -> None:
    dev, prod, naive = comparison.columns
    setup = judge_otel_setup("auto", "Overriding of current TracerProvider is not allowed\n", [])
    dead = replace(prod, startup_otel=replace(prod.startup_otel, otel_setup=setup))
    alive = replace(dev, startup_otel=replace(dev.startup_otel,
                                              otel_setup=judge_otel_setup("auto", "", [])))
    checked = replace(comparison, columns=(alive, dead, naive))
    [row] = [row for row in table(checked) if row.label == "OpenTelemetry set up by"]
    assert row.cells[0].text == "the image's start (otel.mode: auto)" and not row.cells[0].finding
    assert row.cells[1].finding and "the app's own set-up is dead code" in row.cells[1].text
    assert row.cells[2].text == "the wrapper (opentelemetry-instrument in CMD)"
    document = json.loads(compare_json(checked))
    assert document["columns"][1]["otel_setup"]["app_setup_is_dead_code"] is True
    assert document["columns"][1]["startup"]["without_opentelemetry"]["really_off"] is True


def test_a_startup_that_never_got_ready_says_so(comparison: Comparison) -> None:
    dev, prod, naive = comparison.columns
    stuck = replace(naive, startup_otel=StartupStats("otel", (), problem="port 4567 accepts "
                                                     "connections within 60s: not ready in time"))
    rows = {row.label: row.cells for row in table(replace(comparison, columns=(dev, prod, stuck)))}
    assert rows["Create → first healthy answer, OTel on"][2].text.startswith(
        "not measured (port 4567 accepts connections within 60s")


def test_the_python_sources_row_says_what_the_image_ships(comparison: Comparison) -> None:
    """Read off the image's files (AttackSurface.python_sources), per column."""
    def shipping(m: Measured, kept: tuple[str, ...]) -> Measured:
        return replace(m, security=replace(m.security,
                                           surface=replace(m.security.surface, python_sources=kept)))

    dev, prod, naive = comparison.columns
    columns = (shipping(dev, ("stdlib", "packages")), prod, shipping(naive, ("stdlib",)))
    [row] = [row for row in table(replace(comparison, columns=columns))
             if row.label == "Python sources"]
    assert [cell.text for cell in row.cells][:3] == [
        "kept (stdlib, packages)", "byte-code only (stdlib, packages)",
        "kept (stdlib); byte-code only (packages)"]
