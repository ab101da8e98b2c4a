"""The requirements a build installs when the service declares a pyproject.toml: its PEP 621
dependencies as written (pip resolves them once, in the venv stage, and the result is recorded as
the image's requirements.lock), or its lock turned into a pinned list with every file's hash.

uv.lock is exported by uv itself (`uv export --frozen`: offline, no interpreter needed, the format's
own reader); poetry.lock is read by builder/spec/dependencies.py (Poetry's export is a plugin of a
large tool, and lock-version 2.1 records per package the groups and markers that export needs).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from builder.core.errors import FaultError, UserError
from builder.spec.dependencies import POETRY_LOCK, UV_LOCK, poetry_requirements, read_pyproject
from builder.spec.service import ServiceSpec

HEADER = "# Derived by imagewright from {source}; installed by the venv stage. Do not edit.\n"


def derived_requirements(service: ServiceSpec) -> str | None:
    """The requirements file imagewright writes into the build context, or None when the service's
    own requirements file is copied as it is."""
    deps = service.dependencies
    if deps.is_requirements:
        return None
    folder = service.directory
    shown = f"{service.spec_file.rsplit('/', 1)[0]}/"
    if deps.lock_kind == UV_LOCK:
        lines = [uv_export(folder / deps.declared_in, shown + (deps.lock or ""))]
    elif deps.lock_kind == POETRY_LOCK:
        lines = poetry_requirements(folder / (deps.lock or ""), shown + (deps.lock or ""))
    else:
        lines = list(read_pyproject(folder / deps.declared_in, shown + deps.declared_in).dependencies)
    return HEADER.format(source=deps.form) + "\n".join(line.rstrip("\n") for line in lines) + "\n"


def uv_export(pyproject: Path, lock_display: str) -> str:
    """`uv export` of the project's lock: the default groups' packages without the dev group and
    without the project itself (its source is copied into the image as the app), with hashes."""
    try:
        import uv  # the wheel ships the binary; find_uv_bin() locates it
        uv_bin = uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        raise FaultError("uv is not installed here (`make venv` installs it): it exports "
                         f"{lock_display}") from None
    command = [uv_bin, "export", "--frozen", "--offline", "--no-dev", "--no-emit-project",
               "--no-python-downloads", "--no-config", "--format", "requirements-txt",
               "--no-header", "--quiet", "--directory", str(pyproject.parent)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = " ".join(result.stderr.split()) or f"exit code {result.returncode}"
        raise UserError(f"{lock_display}: uv export failed: {reason}")
    return result.stdout
