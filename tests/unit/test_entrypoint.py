"""templates/files/entry.py, run as the images run it (`python -I -S entry.py CMD…`): the Honeycomb
settings it turns into OTLP headers. A stand-in `opentelemetry-instrument` on PATH runs CMD."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY = Path(__file__).resolve().parents[2] / "templates" / "files" / "entry.py"
SHOW_ENV = [sys.executable, "-c",
            "import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith('OTEL_EXPORTER_OTLP')}))"]


def headers_seen(tmp_path: Path, **env: str) -> dict[str, str]:
    wrapper = tmp_path / "opentelemetry-instrument"
    wrapper.write_text('#!/bin/sh\nexec "$@"\n')
    wrapper.chmod(0o755)
    result = subprocess.run([sys.executable, "-I", "-S", str(ENTRY), *SHOW_ENV],
                            env={"PATH": f"{tmp_path}:{os.environ['PATH']}",
                                 "OTEL_SERVICE_NAME": "backend-flask", **env},
                            capture_output=True, text=True, check=True, timeout=30)
    seen: dict[str, str] = json.loads(result.stdout)
    return seen


def test_the_api_key_becomes_trace_and_log_headers_and_metrics_get_a_dataset(
        tmp_path: Path) -> None:
    assert headers_seen(tmp_path, HONEYCOMB_API_KEY="k3y") == {
        "OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=k3y",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS":
            "x-honeycomb-team=k3y,x-honeycomb-dataset=backend-flask-metrics"}


def test_the_metrics_dataset_can_be_named(tmp_path: Path) -> None:
    seen = headers_seen(tmp_path, HONEYCOMB_API_KEY="k3y", HONEYCOMB_METRICS_DATASET="prod-metrics")
    assert seen["OTEL_EXPORTER_OTLP_METRICS_HEADERS"] == (
        "x-honeycomb-team=k3y,x-honeycomb-dataset=prod-metrics")


@pytest.mark.parametrize("env", [
    {},  # no key: nothing to send, nothing set
    {"HONEYCOMB_API_KEY": "k3y", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer t",
     "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "authorization=Bearer m"},  # the user's own win
])
def test_headers_the_user_set_are_left_alone(env: dict[str, str], tmp_path: Path) -> None:
    expected = {k: v for k, v in env.items() if k.startswith("OTEL_")}
    assert headers_seen(tmp_path, **env) == expected
