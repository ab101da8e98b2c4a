"""Secrets in an image's config (ENV, labels, build history), checked like dockle does.

Each finding has a stable, greppable id so CI logs and allow-lists can name it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from builder.engine.client import Engine

# Names whose values are credentials; values that look like well-known credential formats.
_SECRET_NAME = re.compile(r"(?i)(secret|passw(or)?d|token|api[_-]?key|private[_-]?key|credential|"
                          r"x-honeycomb-team)")
_SECRET_VALUE = re.compile(r"(AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|ghp_[A-Za-z0-9]{36}|"
                           r"x-honeycomb-team=[A-Za-z0-9]{8,})")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)=(\S+)")


@dataclass(frozen=True)
class ConfigFinding:
    id: str
    where: str
    detail: str


def _assignments(text: str) -> list[tuple[str, str]]:
    return [(m[1], m[2].strip("'\"")) for m in _ASSIGNMENT.finditer(text)]


def _suspicious(name: str, value: str) -> bool:
    # An empty value or a reference (${VAR}) carries nothing.
    meaningful = bool(value) and not value.startswith("$")
    return meaningful and (bool(_SECRET_NAME.search(name)) or bool(_SECRET_VALUE.search(value)))


def config_findings(engine: Engine, image: str) -> list[ConfigFinding]:
    """The findings in a local image's config and build history (read through the engine)."""
    attrs = engine.inspect_image(image)
    return findings_in(attrs.get("Config") or {}, engine.history(image))


def findings_in(config: Mapping[str, Any], history: Sequence[Mapping[str, Any]]
                ) -> list[ConfigFinding]:
    """The findings in an image config (`Config` of `docker image inspect`) and its history
    (`docker image history`: one entry a layer, newest first, each with `CreatedBy`)."""
    findings: list[ConfigFinding] = []
    for entry in config.get("Env") or []:
        name, _, value = entry.partition("=")
        if _suspicious(name, value):
            findings.append(ConfigFinding("IW-CFG-001", f"ENV {name}",
                                          "a credential in the image's environment"))
    for name, value in (config.get("Labels") or {}).items():
        if _suspicious(name, value):
            findings.append(ConfigFinding("IW-CFG-002", f"LABEL {name}", "a credential in a label"))
    for layer in history:
        created_by = layer.get("CreatedBy") or ""
        for name, value in _assignments(created_by):
            if _suspicious(name, value):
                findings.append(ConfigFinding("IW-CFG-003", f"history: {created_by[:80]}",
                                              f"{name} has a credential-like value in the build history"))
        if (match := _SECRET_VALUE.search(created_by)) and not any(f.where.endswith(created_by[:80])
                                                                   for f in findings):
            findings.append(ConfigFinding("IW-CFG-003", f"history: {created_by[:80]}",
                                          f"credential-like text {match[0][:8]}… in the build history"))
    user = str(config.get("User") or "")
    if user.split(":")[0] in ("", "0", "root"):
        findings.append(ConfigFinding("IW-CFG-004", "USER", "the image runs as root"))
    return findings
