"""The build context's secret scan: what is about to be sent to the engine, checked before it is.

The .dockerignore keeps secret-looking names out (keys, env files, credentials folders); this scan
reads the content of every file that is left, with Trivy's secret rules plus imagewright's own.
A file with a finding refuses the build, unless the spec allows that very file with a reason and an
expiry date (`context.allow_secrets`).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from builder.build.context import service_files
from builder.core.errors import UserError
from builder.scan import trivy
from builder.scan.trivy import Secret
from builder.spec.service import AllowedSecret, ServiceSpec

# Trivy skips paths it expects in images' system folders and in source trees (tests, examples,
# vendor, locales, Markdown). In a build context every file is the service's and may be copied
# into an image, so those skips are off: a test fixture that holds a real-looking key needs an
# allow entry with its reason, like any other file.
_DISABLED_ALLOW_RULES = ("tests", "examples", "vendor", "locale-dir", "markdown")


@dataclass(frozen=True)
class ContextVerdict:
    """Findings per file: the refused ones, those an allow entry covers, and entries left unused."""

    refused: tuple[tuple[str, tuple[Secret, ...]], ...]
    allowed: tuple[tuple[AllowedSecret, tuple[Secret, ...]], ...]
    unused: tuple[AllowedSecret, ...]

    def notes(self) -> list[str]:
        """What people should see about the allow entries of a build that goes ahead."""
        return ([f"context: {entry.path} is sent although it holds "
                 f"{', '.join(sorted({s.rule_id for s in found}))}, allowed by {entry.source} "
                 f"until {entry.expires:%Y-%m-%d}: {entry.reason}" for entry, found in self.allowed]
                + [f"context: {entry.source}: allow entry for {entry.path} matches no finding; "
                   "remove it" for entry in self.unused])


class ContextSecretsError(UserError):
    """Files in the service folder hold secrets: the context is not sent, nothing is built."""


def judge(findings: Sequence[Secret], allowed: Sequence[AllowedSecret]) -> ContextVerdict:
    """Group findings by file and hold each file against the allow entries (pure)."""
    by_file: dict[str, list[Secret]] = {}
    for finding in sorted(findings, key=lambda s: (s.path, s.line, s.rule_id)):
        by_file.setdefault(finding.path, []).append(finding)
    entries = {entry.path: entry for entry in allowed}
    refused = tuple((path, tuple(found)) for path, found in by_file.items() if path not in entries)
    covered = tuple((entries[path], tuple(found)) for path, found in by_file.items()
                    if path in entries)
    unused = tuple(entry for entry in allowed if entry.path not in by_file)
    return ContextVerdict(refused, covered, unused)


def refusal(service: ServiceSpec, verdict: ContextVerdict) -> ContextSecretsError:
    """One line per refused file: its path and the rules that matched (with their lines)."""
    lines = [f"  {path}: " + ", ".join(f"{s.rule_id} ({s.title}, line {s.line})" for s in found)
             for path, found in verdict.refused]
    count = f"{len(lines)} file{'s' if len(lines) != 1 else ''}"
    return ContextSecretsError(
        f"build context of {service.name} refused: secrets in {count} of "
        f"{Path(service.spec_file).parent} (take them out of the folder, or allow a file with a "
        f"reason and an expiry under context.allow_secrets in {service.spec_file}):\n"
        + "\n".join(lines))


def scan_context(context: io.BytesIO, service_dir: str = "") -> tuple[Secret, ...]:
    """Trivy's secret scan of the service's files in a context tar (under `service_dir`), byte for
    byte as they will be sent (imagewright's own files are left out: the service cannot change
    them). Paths in the findings are relative to the service folder."""
    with tempfile.TemporaryDirectory(prefix="imagewright-context-") as temp:
        workdir = Path(temp)
        folder = workdir / "context"
        folder.mkdir()
        for relative, data in service_files(context, service_dir).items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        config = yaml.safe_load(trivy.SECRET_CONFIG.read_text(encoding="utf-8")) or {}
        config["disable-allow-rules"] = list(_DISABLED_ALLOW_RULES)
        config_file = workdir / "trivy-secret.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return trivy.scan_folder_secrets(folder, config_file, workdir)


def check_context(service: ServiceSpec, context: io.BytesIO, service_dir: str = ""
                  ) -> ContextVerdict:
    """Scan a context before it is sent; raise, listing the files, when any is not allowed."""
    verdict = judge(scan_context(context, service_dir), service.allowed_secrets)
    if verdict.refused:
        raise refusal(service, verdict)
    return verdict
