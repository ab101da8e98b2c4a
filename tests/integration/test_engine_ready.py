"""`make engine` on this machine, where a daemon answers: one line, nothing installed, seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_an_answering_engine_is_reported_at_once() -> None:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "builder.engine.setup"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # nothing to install, nothing to start
    assert lines[0].startswith("engine: Docker ") and " answers" in lines[0]
    # The BuildKit and dev-loop paths need both plugins; the setup installs them where it can.
    assert "buildx " in lines[0] and "compose " in lines[0], lines[0]
    assert elapsed < 10, f"took {elapsed:.1f} s"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_user_the_socket_refuses_is_told_so_in_one_line() -> None:
    """Not root: nothing is installed or started; one line says why, and the step fails."""
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                             sys.executable, "-S", "-m", "builder.engine.setup"], cwd=ROOT,
                            env={**os.environ, "HOME": "/tmp"}, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "engine: the Docker socket refuses this user: join the docker group or run as root"]
