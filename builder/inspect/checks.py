"""What a variant or flavor promises (templates/catalog.yaml), checked on a measured image.

Each check is registered with a stable, greppable id (as dockle's CIS-DI-… and DKL-…): reports,
CI logs and the prod gate name it, so an id is never renumbered or reused. A check looks at an
AttackSurface already measured (builder/inspect/surface.py) and the image's config (`docker image
inspect`'s Config); nothing here talks to Docker.

| id           | promise         | what the image has                                              |
|--------------|-----------------|-----------------------------------------------------------------|
| IW-USER-001  | runs_as_root    | USER unset, 0 or root                                           |
| IW-USER-002  | user            | the uid USER names                                              |
| IW-SHELL-001 | shell           | sh, bash, dash, ash, zsh, ksh, mksh or busybox in a bin folder  |
| IW-PKG-001   | package_manager | apt, apt-get, dpkg, apk, yum, dnf or rpm in a bin folder        |
| IW-PKG-002   | pip             | a pip command in a bin folder, or pip as a module of any Python |
| IW-PKG-003   | package_caches  | files left in apt lists, apt/apk caches, pip's cache, build tmp |
| IW-TOOL-001  | compilers       | gcc, cc, c++, g++, clang, tcc, ld, as or make in a bin folder   |
| IW-FS-001    | setuid          | files with the setuid or setgid bit                             |
| IW-FS-002    | world_writable  | files or folders anyone may write (sticky folders excepted)     |

The credential checks on an image's config (builder/inspect/config.py) use IW-CFG-001 (ENV),
IW-CFG-002 (labels), IW-CFG-003 (build history) and IW-CFG-004 (runs as root).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from builder.inspect.surface import AttackSurface
from builder.spec.catalog import Promises

ImageConfig = Mapping[str, Any]  # `docker image inspect`'s "Config": User, Env, Labels, …
Found = bool | int | str
PIP_COMMANDS = ("pip", "pip3")


@dataclass(frozen=True)
class Observation:
    """What the image has, comparable with the promised value, and the evidence (paths, USER)."""

    value: Found
    evidence: tuple[str, ...] = ()


Measure = Callable[[AttackSurface, ImageConfig], Observation]


@dataclass(frozen=True)
class Check:
    id: str
    promise: str  # the Promises field it checks
    title: str
    measure: Measure


@dataclass(frozen=True)
class CheckResult:
    id: str
    promise: str
    title: str
    promised: bool | int
    found: Found
    passed: bool
    detail: str  # one line: what was promised and what the image has


REGISTRY: dict[str, Check] = {}


def register(check_id: str, promise: str, title: str) -> Callable[[Measure], Measure]:
    """Add a check; one per promise, one id per check."""
    def add(measure: Measure) -> Measure:
        if check_id in REGISTRY or any(c.promise == promise for c in REGISTRY.values()):
            raise ValueError(f"{check_id} ({promise}) is registered twice")
        REGISTRY[check_id] = Check(check_id, promise, title, measure)
        return measure

    return add


def _present(paths: tuple[str, ...]) -> Observation:
    return Observation(bool(paths), paths)


@register("IW-USER-001", "runs_as_root", "runs as root")
def _runs_as_root(surface: AttackSurface, config: ImageConfig) -> Observation:
    return Observation(surface.runs_as_root, (f"USER {surface.user or 'unset'}",))


@register("IW-USER-002", "user", "runs as the promised uid")
def _user(surface: AttackSurface, config: ImageConfig) -> Observation:
    user = str(config.get("User") or "")
    uid = user.split(":")[0]
    return Observation(int(uid) if uid.isdigit() else uid or "unset", (f"USER {user or 'unset'}",))


@register("IW-SHELL-001", "shell", "a shell")
def _shell(surface: AttackSurface, config: ImageConfig) -> Observation:
    return _present(surface.shells)


@register("IW-PKG-001", "package_manager", "a package manager")
def _package_manager(surface: AttackSurface, config: ImageConfig) -> Observation:
    return _present(tuple(path for path in surface.package_managers
                          if path.rsplit("/", 1)[-1] not in PIP_COMMANDS))


@register("IW-PKG-002", "pip", "pip")
def _pip(surface: AttackSurface, config: ImageConfig) -> Observation:
    commands = tuple(path for path in surface.package_managers
                     if path.rsplit("/", 1)[-1] in PIP_COMMANDS)
    return _present(commands + (("pip module",) if surface.pip_module else ()))


@register("IW-PKG-003", "package_caches", "package caches")
def _package_caches(surface: AttackSurface, config: ImageConfig) -> Observation:
    return _present(surface.package_caches)


@register("IW-TOOL-001", "compilers", "compilers")
def _compilers(surface: AttackSurface, config: ImageConfig) -> Observation:
    return _present(surface.compilers)


@register("IW-FS-001", "setuid", "setuid/setgid files")
def _setuid(surface: AttackSurface, config: ImageConfig) -> Observation:
    return _present(surface.setuid_files)


@register("IW-FS-002", "world_writable", "world-writable paths")
def _world_writable(surface: AttackSurface, config: ImageConfig) -> Observation:
    return _present(surface.world_writable)


def evaluate(promises: Promises, surface: AttackSurface, config: ImageConfig
             ) -> list[CheckResult]:
    """Every registered check whose promise is declared, in registry order."""
    results: list[CheckResult] = []
    for check in REGISTRY.values():
        promised = getattr(promises, check.promise)
        if promised is None:
            continue
        seen = check.measure(surface, config)
        passed = seen.value == promised
        results.append(CheckResult(check.id, check.promise, check.title, promised, seen.value,
                                   passed, _detail(promised, seen, passed)))
    return results


def failed(results: list[CheckResult] | tuple[CheckResult, ...]) -> list[CheckResult]:
    return [result for result in results if not result.passed]


def _detail(promised: bool | int, seen: Observation, passed: bool) -> str:
    evidence = _listing(seen.evidence)
    if not isinstance(promised, bool):  # a uid
        return evidence if passed else f"promised uid {promised}, found {evidence}"
    found = ("yes" if seen.value else "no") + (f" ({evidence})" if evidence else "")
    return found if passed else f"promised {'yes' if promised else 'no'}, found {found}"


def _listing(items: tuple[str, ...], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "")
