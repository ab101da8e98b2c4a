"""`images/<service>/image.yaml` → a validated, typed ServiceSpec.

This module is pure: no Docker, no network. Every problem becomes one SpecError naming the file,
the key path and the line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from builder.core.errors import SpecError
from builder.core.yamlfile import KeyPath, YamlDocument, load_yaml
from builder.spec.dependencies import (
    LOCK_FILES,
    POETRY_LOCK,
    UV_LOCK,
    Dependencies,
    check_uv_lock,
    hashed_requirements,
    poetry_requirements,
    read_pyproject,
)

SPEC_FILENAME = "image.yaml"
VARIANTS = ("dev", "prod")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_PIP_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\[\],-]*([<>=!~]=?[A-Za-z0-9.*+!-]+)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE_REF = re.compile(
    r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?/)?"  # optional registry host or first path part
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
# Names that carry credentials belong to run time (env) or build secrets, never to ARG/ENV/labels.
_SECRET_NAME = re.compile(r"(?i)(secret|password|passwd|token|api[_-]?key|private[_-]?key|credential)")
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


@dataclass(frozen=True)
class SmokeRequest:
    """A request `verify` sends; `route` is the server span's expected `http.route`, `spans` the
    manual spans the app opens inside it."""

    path: str
    method: str
    status: int
    route: str | None
    spans: tuple[str, ...]


@dataclass(frozen=True)
class DevSettings:
    command: tuple[str, ...]
    base: str | None
    apt_packages: tuple[str, ...]
    pip_packages: tuple[str, ...]


@dataclass(frozen=True)
class ProdSettings:
    command: tuple[str, ...]
    flavors: tuple[str, ...]
    # Installed with the service's dependencies, so dev (a superset of prod) has them too.
    pip_packages: tuple[str, ...] = ()


SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")


@dataclass(frozen=True)
class GatePolicy:
    """What makes `scan` fail for one variant; empty severity lists mean "report only"."""

    fail_on_severity: tuple[str, ...]
    only_fixed: bool
    fail_on_secrets: bool
    fail_on_misconfig_severity: tuple[str, ...]

    @property
    def enforcing(self) -> bool:
        return bool(self.fail_on_severity or self.fail_on_secrets or self.fail_on_misconfig_severity)


@dataclass(frozen=True)
class ScanPolicy:
    dev: GatePolicy
    prod: GatePolicy

    def for_variant(self, variant: str) -> GatePolicy:
        return self.dev if variant == "dev" else self.prod


# Dev images carry debug tooling on purpose: they are reported on, never gated.
DEFAULT_POLICY = ScanPolicy(
    dev=GatePolicy(fail_on_severity=(), only_fixed=True, fail_on_secrets=False,
                   fail_on_misconfig_severity=()),
    prod=GatePolicy(fail_on_severity=("CRITICAL", "HIGH"), only_fixed=True, fail_on_secrets=True,
                    fail_on_misconfig_severity=("CRITICAL", "HIGH")),
)


@dataclass(frozen=True)
class AllowedSecret:
    """`context.allow_secrets`: one file the build may send although its secret scan finds
    something in it — said why, and until when (an expired entry is refused)."""

    path: str  # relative to the service folder, as the context holds it
    reason: str
    expires: date
    source: str  # image.yaml:line, for messages


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    directory: Path
    spec_file: str
    description: str
    version: str
    source_url: str
    port: int
    health_path: str
    dependencies: Dependencies
    sources: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    build_args: tuple[tuple[str, str], ...]
    dev: DevSettings
    prod: ProdSettings
    smoke: tuple[SmokeRequest, ...]
    policy: ScanPolicy = DEFAULT_POLICY
    allowed_secrets: tuple[AllowedSecret, ...] = ()
    # Run at build time in the app's folder, with the app's environment (e.g. Django's
    # collectstatic); each an exec-form command.
    build_commands: tuple[tuple[str, ...], ...] = ()

    def command_for(self, variant: str) -> tuple[str, ...]:
        return self.dev.command if variant == "dev" else self.prod.command


# ---- a small declarative schema -----------------------------------------------------------------

Check = Callable[[Any, KeyPath], Any]


@dataclass(frozen=True)
class Field:
    check: Check
    required: bool = False
    default: Any = None


class Validator:
    def __init__(self, doc: YamlDocument, service_dir: Path, flavors: tuple[str, ...]) -> None:
        self.doc = doc
        self.service_dir = service_dir
        self.flavors = flavors

    def fail(self, path: KeyPath, message: str) -> SpecError:
        return self.doc.error(path, message)

    def mapping(self, value: Any, path: KeyPath, fields: dict[str, Field]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.fail((*path, key), f"unknown key{hint}")
        result: dict[str, Any] = {}
        for key, field in fields.items():
            if key in value:
                result[key] = field.check(value[key], (*path, key))
            elif field.required:
                raise self.fail(path, f"missing required key '{key}'")
            else:
                result[key] = field.default
        return result

    def string(self, value: Any, path: KeyPath) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        if not value.strip():
            raise self.fail(path, "must not be empty")
        if any(ord(char) < 32 for char in value):
            raise self.fail(path, "must not contain control characters")
        return value

    def matching(self, pattern: re.Pattern[str], what: str) -> Check:
        def check(value: Any, path: KeyPath) -> str:
            text = self.string(value, path)
            if not pattern.match(text):
                raise self.fail(path, f"{text!r} is not a valid {what}")
            return text

        return check

    def integer(self, low: int, high: int) -> Check:
        def check(value: Any, path: KeyPath) -> int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(path, f"expected an integer, got {_kind(value)}")
            if not low <= value <= high:
                raise self.fail(path, f"{value} is out of range {low}..{high}")
            return value

        return check

    def url_path(self, value: Any, path: KeyPath) -> str:
        text = self.string(value, path)
        if not text.startswith("/") or " " in text:
            raise self.fail(path, f"{text!r} must be a URL path starting with '/'")
        return text

    def listing(self, item: Check, *, non_empty: bool = False, unique: bool = True) -> Check:
        def check(value: Any, path: KeyPath) -> tuple[Any, ...]:
            if not isinstance(value, list):
                raise self.fail(path, f"expected a list, got {_kind(value)}")
            if non_empty and not value:
                raise self.fail(path, "must not be empty")
            items = tuple(item(entry, (*path, index)) for index, entry in enumerate(value))
            if unique:
                for index, entry in enumerate(items):
                    if entry in items[:index]:
                        raise self.fail((*path, index), f"{entry!r} is listed twice")
            return items

        return check

    def variables(self, where: str) -> Check:
        """A mapping of variable names to values; names that look like secrets are refused."""
        advice = {
            "env": "pass it at run time (docker run -e) instead of baking it into the image",
            "build_args": "build arguments are kept in the image's history; pass it at run time "
                          "(docker run -e) or use a build secret instead",
        }[where]
        return lambda value, path: self._variables(value, path, advice)

    def _variables(self, value: Any, path: KeyPath, advice: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        pairs = []
        for name, raw in value.items():
            if not _ENV_NAME.match(name):
                raise self.fail((*path, name), "is not a valid variable name")
            if _SECRET_NAME.search(name):
                raise self.fail((*path, name), f"looks like a secret; {advice}")
            if isinstance(raw, bool) or not isinstance(raw, str | int | float):
                raise self.fail((*path, name), f"expected a string, got {_kind(raw)}")
            pairs.append((name, str(raw)))
        return tuple(pairs)

    def relative_file(self, *, directory_ok: bool) -> Check:
        def check(value: Any, path: KeyPath) -> str:
            text = self.string(value, path)
            candidate = Path(text)
            if candidate.is_absolute() or ".." in candidate.parts:
                raise self.fail(path, f"{text!r} must be a relative path inside the service folder")
            target = self.service_dir / candidate
            root = self.service_dir.resolve()
            resolved = target.resolve()
            if resolved != root and root not in resolved.parents:
                raise self.fail(path, f"{text!r} points outside the service folder")
            if not target.exists():
                raise self.fail(path, f"{text!r} does not exist in {self.service_dir}")
            if not directory_ok and not target.is_file():
                raise self.fail(path, f"{text!r} is not a file")
            for link in _symlinks_under(target):
                if root not in link.resolve().parents:
                    raise self.fail(path, f"{text!r} contains a symlink leading outside the folder")
            return candidate.as_posix().rstrip("/")

        return check

    def flavor(self, value: Any, path: KeyPath) -> str:
        text = self.string(value, path)
        if text not in self.flavors:
            close = difflib.get_close_matches(text, list(self.flavors), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.fail(path, f"unknown flavor {text!r}{hint}; known: {', '.join(self.flavors)}")
        return text

    def method(self, value: Any, path: KeyPath) -> str:
        text = self.string(value, path).upper()
        if text not in _HTTP_METHODS:
            raise self.fail(path, f"{value!r} is not one of {', '.join(_HTTP_METHODS)}")
        return text

    def optional(self, check: Check) -> Check:
        return lambda value, path: None if value is None else check(value, path)


def _symlinks_under(target: Path) -> list[Path]:
    if target.is_symlink():
        return [target]
    if not target.is_dir():
        return []
    return [path for path in target.rglob("*") if path.is_symlink()]


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)


def load_spec(service_dir: Path, flavors: tuple[str, ...], root: Path | None = None,
              today: date | None = None) -> ServiceSpec:
    """Load and validate `<service_dir>/image.yaml`; `flavors` are the prod flavors the catalog knows.

    `today` (default: the local date) is what `context.allow_secrets` expiry dates are held to."""
    spec_path = service_dir / SPEC_FILENAME
    display = str(spec_path.relative_to(root)) if root and spec_path.is_relative_to(root) else str(spec_path)
    doc = load_yaml(spec_path, display)
    v = Validator(doc, service_dir, flavors)
    command = v.listing(v.string, non_empty=True, unique=False)
    image_ref = v.matching(_IMAGE_REF, "image reference")
    smoke_fields = {
        "path": Field(v.url_path, required=True),
        "method": Field(v.method, default="GET"),
        "status": Field(v.integer(100, 599), default=200),
        # The server span's `http.route` as the framework writes it: `/api/x` (Flask, FastAPI),
        # `api/x` (Django's URL pattern, no leading slash).
        "route": Field(v.optional(v.matching(re.compile(r"^\S+$"), "route (no spaces)"))),
        "spans": Field(v.listing(v.string), default=()),
    }
    top = v.mapping(doc.data, (), {
        "name": Field(v.matching(_NAME, "service name (lower-case letters, digits, . _ -)"),
                      required=True),
        "description": Field(v.string, default=""),
        "version": Field(v.matching(re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"), "version"),
                         default="0.0.0"),
        "source_url": Field(v.matching(re.compile(r"^https?://\S+$"), "URL"), default=""),
        "port": Field(v.integer(1, 65535), required=True),
        "health": Field(v.url_path, required=True),
        "requirements": Field(v.relative_file(directory_ok=False)),
        "pyproject": Field(v.relative_file(directory_ok=False)),
        "lock": Field(v.relative_file(directory_ok=False)),
        "sources": Field(v.listing(v.relative_file(directory_ok=True), non_empty=True),
                         required=True),
        "env": Field(v.variables("env"), default=()),
        "build_args": Field(v.variables("build_args"), default=()),
        "build_commands": Field(v.listing(command, unique=False), default=()),
        "dev": Field(lambda value, path: v.mapping(value, path, {
            "command": Field(command, required=True),
            "base": Field(v.optional(image_ref)),
            "apt_packages": Field(v.listing(v.matching(_PACKAGE, "Debian package name")),
                                  default=()),
            "pip_packages": Field(v.listing(v.matching(_PIP_REQUIREMENT, "pip requirement")),
                                  default=()),
        }), required=True),
        "prod": Field(lambda value, path: v.mapping(value, path, {
            "command": Field(command, required=True),
            "flavors": Field(v.listing(v.flavor, non_empty=True), default=flavors[:1]),
            "pip_packages": Field(v.listing(v.matching(_PIP_REQUIREMENT, "pip requirement")),
                                  default=()),
        }), required=True),
        "smoke": Field(v.listing(lambda value, path: v.mapping(value, path, smoke_fields),
                                 unique=False), default=()),
        "policy": Field(lambda value, path: _scan_policy(v, value, path), default=DEFAULT_POLICY),
        "context": Field(lambda value, path: v.mapping(value, path, {
            "allow_secrets": Field(lambda value, path: _allowed_secrets(
                v, value, path, today or date.today()), default=()),
        })["allow_secrets"], default=()),
    })
    if top["name"] != service_dir.name:
        raise doc.error(("name",), f"{top['name']!r} must match its folder name {service_dir.name!r}")
    dev, prod = top["dev"], top["prod"]
    return ServiceSpec(
        name=top["name"],
        directory=service_dir,
        spec_file=display,
        description=top["description"],
        version=top["version"],
        source_url=top["source_url"],
        port=top["port"],
        health_path=top["health"],
        dependencies=_dependencies(v, top, root),
        sources=top["sources"],
        env=top["env"],
        build_args=top["build_args"],
        dev=DevSettings(dev["command"], dev["base"], dev["apt_packages"], dev["pip_packages"]),
        prod=ProdSettings(prod["command"], prod["flavors"], prod["pip_packages"]),
        smoke=tuple(SmokeRequest(**entry) for entry in top["smoke"]),
        policy=top["policy"],
        allowed_secrets=top["context"],
        build_commands=top["build_commands"],
    )


def _dependencies(v: Validator, top: dict[str, Any], root: Path | None) -> Dependencies:
    """`requirements: FILE`, or `pyproject: pyproject.toml` with an optional `lock:` beside it."""
    requirements, pyproject, lock = top["requirements"], top["pyproject"], top["lock"]
    if requirements and pyproject:
        raise v.fail(("pyproject",), "give either 'requirements' or 'pyproject', not both")
    if not requirements and not pyproject:
        raise v.fail((), "missing required key 'requirements' (a pip requirements file) or "
                         "'pyproject' (a PEP 621 pyproject.toml)")
    folder = v.service_dir

    def shown(relative: str) -> str:
        path = folder / relative
        return str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)

    if requirements:
        if lock:
            raise v.fail(("lock",), "a lock file goes with 'pyproject' (a requirements file with "
                                    "--hash lines is a lock already)")
        text = (folder / requirements).read_text(encoding="utf-8", errors="replace")
        return Dependencies(requirements, hashed=hashed_requirements(text))
    if Path(pyproject).name != "pyproject.toml":
        raise v.fail(("pyproject",), f"{pyproject!r} must be a file named pyproject.toml")
    project = read_pyproject(folder / pyproject, shown(pyproject))
    if lock is None:
        if not project.has_project_table:
            raise v.fail(("pyproject",), f"{shown(pyproject)} has no [project] table (PEP 621): "
                                         "declare its dependencies there, or add its lock file")
        return Dependencies(pyproject)
    if Path(lock).name not in LOCK_FILES:
        raise v.fail(("lock",), f"{lock!r} is not one of {', '.join(LOCK_FILES)}")
    if Path(lock).parent != Path(pyproject).parent:
        raise v.fail(("lock",), f"{lock!r} must sit beside {pyproject!r}")
    if Path(lock).name == UV_LOCK:
        if not project.has_project_table:
            raise v.fail(("pyproject",), f"{shown(pyproject)} has no [project] table (PEP 621)")
        check_uv_lock(folder / lock, shown(lock), project)
    elif Path(lock).name == POETRY_LOCK:
        poetry_requirements(folder / lock, shown(lock), project)  # refused now if it cannot be
    return Dependencies(pyproject, lock=lock)


def _allowed_secrets(v: Validator, value: Any, path: KeyPath, today: date
                     ) -> tuple[AllowedSecret, ...]:
    """`[{path, reason, expires}]`: one file each, never twice, and none past its date."""
    def entry(item: Any, item_path: KeyPath) -> AllowedSecret:
        fields = v.mapping(item, item_path, {
            "path": Field(v.relative_file(directory_ok=False), required=True),
            "reason": Field(v.string, required=True),
            "expires": Field(lambda value, path: _date(v, value, path), required=True),
        })
        if fields["expires"] < today:
            raise v.fail((*item_path, "expires"),
                         f"expired on {fields['expires']:%Y-%m-%d}: take the file out of the build "
                         "context, or review the reason and renew the date")
        return AllowedSecret(fields["path"], fields["reason"], fields["expires"],
                             f"{v.doc.file}:{v.doc.lines.get(item_path, 0)}")

    entries = v.listing(entry, unique=False)(value, path)
    for index, allowed in enumerate(entries):
        if allowed.path in [earlier.path for earlier in entries[:index]]:
            raise v.fail((*path, index, "path"), f"{allowed.path!r} is listed twice")
    return entries


def _date(v: Validator, value: Any, path: KeyPath) -> date:
    """YAML reads an unquoted 2025-06-30 as a date; a quoted one is accepted the same."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise v.fail(path, f"{value!r} is not a date (YYYY-MM-DD)")


def _scan_policy(v: Validator, value: Any, path: KeyPath) -> ScanPolicy:
    """`policy: {dev: {...}, prod: {...}}`; a key left out keeps that variant's default."""
    def severities(value: Any, path: KeyPath) -> tuple[str, ...]:
        def one(item: Any, item_path: KeyPath) -> str:
            text = v.string(item, item_path).upper()
            if text not in SEVERITIES:
                raise v.fail(item_path, f"{item!r} is not one of {', '.join(SEVERITIES)}")
            return text
        return v.listing(one)(value, path)

    def boolean(value: Any, path: KeyPath) -> bool:
        if not isinstance(value, bool):
            raise v.fail(path, f"expected true or false, got {_kind(value)}")
        return value

    def variant(default: GatePolicy) -> Check:
        return lambda value, path: GatePolicy(**v.mapping(value, path, {
            "fail_on_severity": Field(severities, default=default.fail_on_severity),
            "only_fixed": Field(boolean, default=default.only_fixed),
            "fail_on_secrets": Field(boolean, default=default.fail_on_secrets),
            "fail_on_misconfig_severity": Field(severities,
                                                default=default.fail_on_misconfig_severity),
        }))

    fields = v.mapping(value, path, {
        "dev": Field(variant(DEFAULT_POLICY.dev), default=DEFAULT_POLICY.dev),
        "prod": Field(variant(DEFAULT_POLICY.prod), default=DEFAULT_POLICY.prod),
    })
    return ScanPolicy(dev=fields["dev"], prod=fields["prod"])


def discover_services(images_dir: Path, flavors: tuple[str, ...], root: Path | None = None
                      ) -> list[ServiceSpec]:
    """Every `images/*/image.yaml`, sorted by name."""
    if not images_dir.is_dir():
        raise SpecError(str(images_dir), "", "no such folder")
    return [
        load_spec(folder, flavors, root)
        for folder in sorted(images_dir.iterdir())
        if (folder / SPEC_FILENAME).is_file()
    ]
