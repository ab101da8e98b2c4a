"""templates/files/: the entrypoint and the healthcheck the images run, run here by the same
interpreter flags (`python -I -S`, standard library only). No engine needed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[2] / "templates" / "files"


def run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", "-S", str(FILES / script), *args],
                          capture_output=True, text=True, check=False, timeout=30,
                          env={"PATH": os.environ["PATH"], **env})


@pytest.fixture
def fake_wrapper(tmp_path: Path) -> Path:
    """An `opentelemetry-instrument` that says it ran, first on PATH."""
    wrapper = tmp_path / "opentelemetry-instrument"
    wrapper.write_text("#!/bin/sh\necho \"wrapped: $*\"\n")
    wrapper.chmod(0o755)
    return tmp_path


def test_auto_mode_starts_opentelemetry_in_the_app_or_under_the_wrapper(fake_wrapper: Path
                                                                         ) -> None:
    path = f"{fake_wrapper}:{os.environ['PATH']}"
    wrapped = run("entry.py", "echo", "hi", env={"PATH": path, "IMAGEWRIGHT_OTEL_MODE": "auto",
                                                 "IMAGEWRIGHT_OTEL_START": "wrapper"})
    assert wrapped.returncode == 0 and wrapped.stdout == "wrapped: echo hi\n"
    # The default: no wrapper process; the image's sitecustomize starts it in the app itself.
    direct = run("entry.py", "sh", "-c", "echo $PYTHONPATH",
                 env={"PATH": path, "IMAGEWRIGHT_OTEL_MODE": "auto"})
    assert direct.returncode == 0 and direct.stdout.split(":")[0].endswith("/otel")


def test_app_mode_execs_the_command_without_the_wrapper(fake_wrapper: Path) -> None:
    result = run("entry.py", "echo", "hi", env={"PATH": f"{fake_wrapper}:{os.environ['PATH']}",
                                               "IMAGEWRIGHT_OTEL_MODE": "app",
                                               "HONEYCOMB_API_KEY": "k"})
    assert result.returncode == 0 and result.stdout == "hi\n"
    shown = run("entry.py", "sh", "-c", "echo $OTEL_EXPORTER_OTLP_HEADERS",
                env={"IMAGEWRIGHT_OTEL_MODE": "app", "HONEYCOMB_API_KEY": "k"})
    assert shown.stdout == "x-honeycomb-team=k\n", "the app's own SDK reads the same headers"


def test_a_command_missing_from_the_image_is_one_line_not_a_traceback() -> None:
    result = run("entry.py", "gunicorn-not-here", "app:app", env={})
    assert result.returncode == 127
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("imagewright entrypoint: 'gunicorn-not-here' is not in the image")
    assert "prod.pip_packages" in result.stderr


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_healthcheck_without_a_health_route_asks_whether_the_port_accepts(listening: int) -> None:
    assert run("healthcheck.py", env={"IMAGEWRIGHT_HEALTH_URL":
                                      f"tcp://127.0.0.1:{listening}"}).returncode == 0
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    result = run("healthcheck.py", env={"IMAGEWRIGHT_HEALTH_URL": f"tcp://127.0.0.1:{port}"})
    assert result.returncode == 1 and "unhealthy: tcp://127.0.0.1:" in result.stderr
