"""`make engine` on this machine, where a daemon answers: one line, nothing installed, seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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
    # The other user may not reach the checkout or its venv (a clone in a `mktemp -d` folder is
    # root's alone): the set-up module is stdlib only, so a world-readable copy of it runs under
    # the interpreter the venv was made from.
    copy = Path(tempfile.mkdtemp(prefix="imagewright-engine-setup-"))
    try:
        copy.chmod(0o755)
        for module in ("builder/__init__.py", "builder/engine/__init__.py",
                       "builder/engine/setup.py"):
            (copy / module).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / module, copy / module)
        for folder in (copy / "builder", copy / "builder" / "engine"):
            folder.chmod(0o755)
        result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                 os.path.realpath(sys.executable), "-S", "-m",
                                 "builder.engine.setup"], cwd=copy,
                                env={**os.environ, "HOME": "/tmp"}, capture_output=True, text=True,
                                timeout=120, check=False)
    finally:
        shutil.rmtree(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "engine: the Docker socket refuses this user: join the docker group or run as root"]
