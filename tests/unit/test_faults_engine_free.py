"""Faults that need no engine: each gives a clear message, a non-zero exit, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.core.errors import FaultError
from builder.core.files import atomic_write
from builder.project import Project

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder", "-C", str(ROOT), *args], capture_output=True,
                          text=True, check=False, env={**os.environ, "COLUMNS": "300", **(env or {})})


def test_daemon_unreachable_is_one_clear_line() -> None:
    service = Project(ROOT).services()[0].name
    result = cli("build", service, "--variant", "dev",
                 env={"DOCKER_HOST": "unix:///tmp/imagewright-no-daemon.sock"})
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: cannot reach the Docker daemon: is dockerd running?")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_disk_full_while_writing_a_report_leaves_the_old_file(tmp_path: Path) -> None:
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        report = mount / "summary.md"
        report.write_text("previous report\n")
        with pytest.raises(FaultError, match=r"cannot write .*summary.md: No space left on device"):
            atomic_write(report, "x" * (1 << 20))
        assert report.read_text() == "previous report\n"
        assert sorted(p.name for p in mount.iterdir()) == ["summary.md"]
    finally:
        subprocess.run(["umount", str(mount)], check=True)
