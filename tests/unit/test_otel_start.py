"""The in-process OpenTelemetry start: entry.py's environment for the app, and the sitecustomize's
plan-served entry points and deferred span exporter, run in real interpreters (the SDK and the
OTLP/HTTP exporter are the project's own dependencies; the instrumentation package is only in the
images, so its part is exercised by the integration tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.samples import ROOT

FILES = ROOT / "templates" / "files"
ENTRY = FILES / "entry.py"
OTEL_FOLDER = FILES / "otel"
SITECUSTOMIZE = str(OTEL_FOLDER / "sitecustomize.py")
SHOW_ENV = [sys.executable, "-S", "-c", "import json, os; print(json.dumps(dict(os.environ)))"]


def entry(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", "-S", str(ENTRY), *SHOW_ENV], cwd=cwd, text=True,
                          capture_output=True, check=False,
                          env={"PATH": os.environ["PATH"], **env})


def test_entry_puts_our_sitecustomize_first_then_the_working_dir(tmp_path: Path) -> None:
    result = entry({"PYTHONPATH": f"/user/lib{os.pathsep}{OTEL_FOLDER}"}, tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)["PYTHONPATH"].split(os.pathsep)
    assert seen == [str(OTEL_FOLDER), str(tmp_path), "/user/lib"]


def test_entry_without_python_path(tmp_path: Path) -> None:
    result = entry({}, tmp_path)
    assert json.loads(result.stdout)["PYTHONPATH"].split(os.pathsep) == [str(OTEL_FOLDER),
                                                                       str(tmp_path)]


def test_disabled_sdk_leaves_the_app_untouched(tmp_path: Path) -> None:
    result = entry({"OTEL_SDK_DISABLED": "true"}, tmp_path)
    assert "PYTHONPATH" not in json.loads(result.stdout)


def test_unknown_start_mode_is_one_line(tmp_path: Path) -> None:
    result = entry({"IMAGEWRIGHT_OTEL_START": "fast"}, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "imagewright entrypoint: IMAGEWRIGHT_OTEL_START='fast': "
        "expected 'in-process' (the default) or 'wrapper'"]


def run_with_plan(plan: dict, code: str, tmp_path: Path, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    """`code` after the sitecustomize's plan is in use (imported under another name: no start)."""
    plan_file = tmp_path / "otel-startup.json"
    plan_file.write_text(json.dumps(plan))
    prelude = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('imagewright_site', {SITECUSTOMIZE!r})\n"
        "site = importlib.util.module_from_spec(spec); sys.modules['imagewright_site'] = site\n"
        "spec.loader.exec_module(site)\n"
        f"site.use_plan(site.read_plan({str(plan_file)!r}))\n")
    return subprocess.run([sys.executable, "-c", prelude + code], text=True, capture_output=True,
                          check=False, cwd=tmp_path,
                          env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                               **(env or {})})


PLAN = {"entry_points": {
    "opentelemetry_propagator": [["tracecontext", "opentelemetry.trace.propagation.tracecontext:"
                                                  "TraceContextTextMapPropagator"]],
    "opentelemetry_context": [["contextvars_context", "opentelemetry.context.contextvars_context:"
                                                      "ContextVarsRuntimeContext"]],
    "opentelemetry_id_generator": [["random", "opentelemetry.sdk.trace.id_generator:RandomIdGenerator"]],
    "opentelemetry_resource_detector": [["otel", "opentelemetry.sdk.resources:OTELResourceDetector"]],
    "opentelemetry_logs_exporter": [["otlp_proto_http", "opentelemetry.exporter.otlp.proto.http."
                                                        "_log_exporter:OTLPLogExporter"]],
    "opentelemetry_traces_exporter": [["otlp_proto_http", "opentelemetry.exporter.otlp.proto.http."
                                               "trace_exporter:OTLPSpanExporter"]],
}, "conflicts": {}}


def test_opentelemetry_groups_come_from_the_plan_others_from_the_scan(tmp_path: Path) -> None:
    result = run_with_plan(PLAN, (
        "from opentelemetry.util._importlib_metadata import entry_points\n"
        "print(sorted(ep.name for ep in entry_points(group='opentelemetry_propagator')))\n"
        "print(len(entry_points(group='opentelemetry_traces_sampler')))\n"
        "print(len(entry_points(group='console_scripts')) > 0)\n"), tmp_path)
    assert result.returncode == 0, result.stderr
    # The installed SDK also declares baggage and its samplers: the plan wins.
    assert result.stdout.splitlines() == ["['tracecontext']", "0", "True"]


def test_the_sdk_configurator_gets_a_deferred_span_exporter(tmp_path: Path) -> None:
    result = run_with_plan(PLAN, (
        "from opentelemetry.sdk._configuration import _OTelSDKConfigurator\n"
        "from opentelemetry import trace\n"
        "_OTelSDKConfigurator().configure()\n"
        "[processor] = trace.get_tracer_provider()._active_span_processor._span_processors\n"
        "exporter = processor._batch_processor._exporter\n"
        "print(type(exporter).__qualname__)\n"
        "print(sorted(target for _, target in site._deferred_targets.values()))\n"
        "print('requests' in sys.modules, 'google.protobuf' in sys.modules)\n"
        "real = exporter._made()\n"
        "print(type(real).__name__, real._endpoint)\n"
        "print('requests' in sys.modules)\n"), tmp_path,
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none",
         "OTEL_LOGS_EXPORTER": "otlp", "OTEL_PROPAGATORS": "tracecontext",
         "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "DeferredExporter[opentelemetry.exporter.otlp.proto.http.trace_exporter:OTLPSpanExporter]",
        "['opentelemetry.exporter.otlp.proto.http._log_exporter:OTLPLogExporter', "
        "'opentelemetry.exporter.otlp.proto.http.trace_exporter:OTLPSpanExporter']",
        "False False",
        "OTLPSpanExporter http://127.0.0.1:9/v1/traces",
        "True",
    ]


@pytest.mark.parametrize("content", ["not json", '{"entry_points": 3}', '{"other": {}}'])
def test_an_unreadable_plan_means_discovery(tmp_path: Path, content: str) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(content)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('s', {SITECUSTOMIZE!r})\n"
        "site = importlib.util.module_from_spec(spec); spec.loader.exec_module(site)\n"
        f"print(site.read_plan({str(plan_file)!r}))\n")
    result = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
    assert "unreadable: discovering entry points" in result.stderr


def load_sitecustomize():  # type: ignore[no-untyped-def]
    import importlib.util
    spec = importlib.util.spec_from_file_location("imagewright_sitecustomize", SITECUSTOMIZE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # named otherwise: nothing starts
    return module


@pytest.mark.parametrize(("argv", "env", "supervisor"), [
    (["/opt/venv/bin/flask", "--app", "app", "run", "--port=4567", "--debug"], {}, True),
    (["/opt/venv/bin/flask", "--debug", "run"], {}, True),
    (["/opt/venv/bin/flask", "run", "--reload"], {}, True),
    (["/opt/venv/bin/flask", "run"], {"FLASK_DEBUG": "1"}, True),
    # Werkzeug's child serves: it sets up.
    (["/opt/venv/bin/flask", "--app", "app", "run", "--debug"], {"WERKZEUG_RUN_MAIN": "true"}, False),
    (["/opt/venv/bin/flask", "run", "--debug", "--no-reload"], {}, False),
    (["/opt/venv/bin/flask", "run"], {}, False),
    (["/opt/venv/bin/flask", "routes", "--debug"], {}, False),
    (["/opt/venv/bin/uvicorn", "main:app", "--reload", "--port=8000"], {}, True),
    (["/opt/venv/bin/uvicorn", "main:app", "--port=8000"], {}, False),
    # uvicorn's reloaded server is a multiprocessing child.
    (["-c", "--multiprocessing-fork", "tracker_fd=5", "pipe_handle=7"], {}, False),
    (["/opt/venv/bin/gunicorn", "--reload", "app:app"], {}, False),
    # Django's runserver reloads by default; its child (RUN_MAIN=true) serves.
    (["manage.py", "runserver", "0.0.0.0:8000"], {}, True),
    (["/app/manage.py", "runserver"], {"RUN_MAIN": "true"}, False),
    (["manage.py", "runserver", "--noreload"], {}, False),
    (["/opt/venv/bin/django-admin", "runserver"], {}, True),
    (["manage.py", "migrate"], {}, False),
    ([], {}, False),
])
def test_reload_supervisors_set_nothing_up(argv: list[str], env: dict[str, str],
                                           supervisor: bool) -> None:
    assert load_sitecustomize().is_reload_supervisor(argv, env) is supervisor


@pytest.mark.parametrize(("orig_argv", "helper"), [
    (["/opt/venv/bin/python", "-c", "from multiprocessing.resource_tracker import main;main(4)"], True),
    (["/opt/venv/bin/python", "-c", "from multiprocessing.forkserver import main; main(3, 4, [])"], True),
    # The spawned server itself runs the app.
    (["/opt/venv/bin/python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main(5)",
      "--multiprocessing-fork"], False),
    (["/opt/venv/bin/python", "/opt/venv/bin/gunicorn", "app:app"], False),
    (["/opt/venv/bin/python", "-c"], False),
    ([], False),
])
def test_multiprocessing_helpers_set_nothing_up(orig_argv: list[str], helper: bool) -> None:
    assert load_sitecustomize().is_multiprocessing_helper(orig_argv) is helper


def test_sys_orig_argv_holds_the_code_at_site_time(tmp_path: Path) -> None:
    """The helper check reads sys.orig_argv when site imports sitecustomize: it is set by then."""
    (tmp_path / "sitecustomize.py").write_text("import sys; print(sys.orig_argv[1:])\n")
    result = subprocess.run([sys.executable, "-c", "pass"], text=True, capture_output=True,
                            check=False, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.stdout.strip() == "['-c', 'pass']"
