"""`images/<service>/image.yaml` → a validated, typed ServiceSpec.

This module is pure: no Docker, no network. Every problem becomes one SpecError naming the file,
the key path and the line.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement

from builder.core.errors import SpecError
from builder.core.yamlfile import KeyPath, YamlDocument, load_yaml
from builder.spec import reference
from builder.spec.credentials import credential_kind
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

_PACKAGE = re.compile(r"[a-z0-9][a-z0-9.+-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE_REF = reference.IMAGE_REFERENCE
# Names that carry credentials belong to run time (env) or build secrets, never to ARG/ENV/labels.
_SECRET_NAME = re.compile(r"(?i)(secret|password|passwd|token|api[_-]?key|private[_-]?key|credential)")
# What the tool sets itself, and what changes how code is loaded or whom it trusts. Matched
# without regard to case: `Path` or `pythonpath` is a mistake worth stopping too.
_RESERVED_NAME = re.compile(r"(?i)(OTEL_|IMAGEWRIGHT_|HONEYCOMB_|LD_|PYTHON|SSL_|PIP_|UV_).*|"
                            r"PATH|REQUESTS_CA_BUNDLE|VIRTUAL_ENV")
# Unicode categories refused in every string: controls (Cc, which holds \n, \r, \t, U+0085),
# invisible format characters (Cf: zero-width and bidi controls) and the line and paragraph
# separators (Zl, Zp). Everything `str.splitlines()` splits on is in one of them.
_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (zero-width or bidi control)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
# A path as COPY gets it: names of letters, digits, '_', '-', '+' and '.', joined by '/'. No glob
# characters, '$', quotes, backslashes or spaces can reach a Dockerfile through it.
_PATH = re.compile(r"[\w.][\w.+-]*(?:/[\w.][\w.+-]*)*")
_PATH_CHARACTER = re.compile(r"[\w.+/-]")
# Each source is one COPY, so one layer of the dev image; Docker refuses images of more than
# about 125 layers ("max depth exceeded"), and the base and dev's own layers count too.
MAX_SOURCES = 64
# The health path goes unquoted into the image's environment (IMAGEWRIGHT_HEALTH_URL) and into
# OTEL_PYTHON_EXCLUDED_URLS, a comma-separated list of patterns.
_HEALTH_PATH = re.compile(r"/[A-Za-z0-9._~/%-]*")
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
# Who sets up OpenTelemetry in the running app: the image's wrapper (opentelemetry-instrument owns the
# TracerProvider) or the app's own code (the entrypoint execs the command directly).
OTEL_MODES = ("auto", "app")
# `prod.python_sources`: what prod ships of the stdlib's and the installed packages' Python: byte-code
# only (tracebacks name file, line and function; the lines are in dev, same packages and versions),
# or the .py sources too.
BYTECODE_ONLY = "bytecode"
KEEP_SOURCES = "keep"
PYTHON_SOURCES = (BYTECODE_ONLY, KEEP_SOURCES)
SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on",
            "parentbased_always_off", "parentbased_traceidratio")
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
# Resource attributes imagewright sets on every image: a service's own would contradict them.
_OWN_ATTRIBUTES = re.compile(r"service\.name|service\.version|deployment\.environment|"
                             r"io\.imagewright\..*")


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
    # What the prod command needs that the requirements don't declare (a server such as gunicorn):
    # installed with them, so dev gets the same packages and parity holds.
    pip_packages: tuple[str, ...] = ()
    python_sources: str = BYTECODE_ONLY


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
class OtelOptions:
    """The telemetry choices a service may make (`otel:` in image.yaml), each validated; everything
    else under OTEL_* belongs to imagewright. None and () keep the defaults."""

    endpoint: str | None = None
    resource_attributes: tuple[tuple[str, str], ...] = ()
    sampler: str | None = None
    sampler_ratio: float | None = None
    # `auto` (the default): the image's wrapper sets up OpenTelemetry and owns the TracerProvider,
    # so an app's own set-up is dead code; `app`: the app sets it up itself and the entrypoint
    # runs the command without the wrapper (the OTLP and Honeycomb environment is set all the same).
    mode: str = "auto"

    @property
    def wrapper(self) -> bool:
        return self.mode == "auto"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    directory: Path
    spec_file: str
    description: str
    version: str
    source_url: str
    port: int
    health_path: str | None  # None: ready means "the port accepts connections"
    dependencies: Dependencies
    sources: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    build_args: tuple[tuple[str, str], ...]
    dev: DevSettings
    prod: ProdSettings
    smoke: tuple[SmokeRequest, ...]
    policy: ScanPolicy = DEFAULT_POLICY
    allowed_secrets: tuple[AllowedSecret, ...] = ()
    otel: OtelOptions = OtelOptions()
    # Run at build time in the app's folder, with the app's environment (e.g. Django's
    # collectstatic); each an exec-form command.
    build_commands: tuple[tuple[str, ...], ...] = ()

    def command_for(self, variant: str) -> tuple[str, ...]:
        return self.dev.command if variant == "dev" else self.prod.command

    @property
    def untraced_urls(self) -> tuple[str, ...]:
        """`OTEL_PYTHON_EXCLUDED_URLS`: see `untraced_urls`."""
        return untraced_urls(self.health_path)


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
        """Every user string passes here (or through `text`), whatever field it is for."""
        text = self.text(value, path)
        if not text.strip():
            raise self.fail(path, "must not be empty")
        return text

    def text(self, value: Any, path: KeyPath) -> str:
        """A string, possibly empty, with no character that could end or hide a line."""
        if not isinstance(value, str):
            written = self.doc.written.get(path)
            hint = f": quote it ('{written}') to keep it as written" if written else ""
            raise self.fail(path, f"expected a string, got {_kind(value)}{hint}")
        for char in value:
            category = unicodedata.category(char)
            if category in _REFUSED_CATEGORIES:
                name = unicodedata.name(char, "")
                described = f"U+{ord(char):04X}" + (f" ({name})" if name else "")
                raise self.fail(path, f"contains {described}, {_REFUSED_CATEGORIES[category]}: "
                                      "remove it")
        return value

    def matching(self, pattern: re.Pattern[str], what: str) -> Check:
        def check(value: Any, path: KeyPath) -> str:
            text = self.string(value, path)
            if not pattern.fullmatch(text):
                raise self.fail(path, f"{text!r} is not a valid {what}")
            return text

        return check

    def service_name(self, value: Any, path: KeyPath) -> str:
        text = self.string(value, path)
        if problem := reference.repository_name_problem(text):
            raise self.fail(path, f"{text!r} is not a valid service name: it {problem}")
        return text

    def health_path(self, value: Any, path: KeyPath) -> str:
        text = self.url_path(value, path)
        if not _HEALTH_PATH.fullmatch(text):
            stray = next(char for char in text if not re.fullmatch(r"[A-Za-z0-9._~/%-]", char))
            raise self.fail(path, f"{text!r} has {stray!r}: the health path is written into the "
                                  "image's environment, so it takes letters, digits and / . _ ~ "
                                  "- % only (no query)")
        return text

    def url(self, *, credentials_advice: str = "") -> Check:
        """An http(s) URL with a host; one carrying a password is refused."""
        def check(value: Any, path: KeyPath) -> str:
            text = self.string(value, path)
            try:
                parts = urlsplit(text)
                parts.port  # noqa: B018 -- parses the port, raising on a bad one
            except ValueError:
                raise self.fail(path, f"{text!r} is not a valid URL") from None
            if parts.scheme not in ("http", "https") or not parts.hostname or \
                    re.search(r"[\s\"\\<>`{}|^]", text):
                raise self.fail(path, f"{text!r} is not a valid http(s) URL")
            if credentials_advice and (parts.username or parts.password):
                raise self.fail(path, f"{text!r} carries credentials; {credentials_advice}")
            return text

        return check

    def pip_requirement(self, value: Any, path: KeyPath) -> str:
        """A PEP 508 requirement (`rich>=13`, `httpx[http2]`, markers) as pip reads it."""
        text = self.string(value, path)
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            reason = str(error).split("\n")[0]
            raise self.fail(path, f"{text!r} is not a valid pip requirement ({reason})") from None
        if requirement.url:
            raise self.fail(path, f"{text!r} is a direct URL reference; name the package (and "
                                  "a version) so it comes from the index")
        return text

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
        if not text.startswith("/") or re.search(r"\s", text):
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
            where = (*path, name)
            if not _ENV_NAME.fullmatch(name):
                raise self.fail(where, "is not a valid variable name")
            if _RESERVED_NAME.fullmatch(name):
                raise self.fail(where, "is reserved: imagewright sets it, or it changes how code "
                                       "is loaded or trusted; for telemetry use the `otel:` keys "
                                       "(endpoint, resource_attributes, sampler)")
            if _SECRET_NAME.search(name):
                raise self.fail(where, f"looks like a secret; {advice}")
            text = self.text(self._as_written(raw, where), where)
            if kind := credential_kind(text):
                raise self.fail(where, f"the value looks like {kind}; {advice}")
            pairs.append((name, text))
        return tuple(pairs)

    def _as_written(self, raw: Any, path: KeyPath) -> Any:
        """An unquoted `1.10`, `0755`, `12:30` or `yes` stays the text it was, not 1.1, 493, 750
        or True: an environment variable is a string, and the user wrote that string."""
        if raw is None:
            raise self.fail(path, "has no value; write one, or '' for an empty string")
        if isinstance(raw, bool | int | float) and path in self.doc.written:
            return self.doc.written[path]
        return raw

    def relative_file(self, *, directory_ok: bool) -> Check:
        def check(value: Any, path: KeyPath) -> str:
            text = self.string(value, path)
            candidate = Path(text)
            if candidate.is_absolute() or ".." in candidate.parts:
                raise self.fail(path, f"{text!r} must be a relative path inside the service folder")
            normal = candidate.as_posix()
            if normal == ".":
                raise self.fail(path, f"{text!r} would copy the whole service folder (image.yaml "
                                      "included); list the files and folders the app needs, e.g. "
                                      "[app.py, pkg]")
            if not _PATH.fullmatch(normal):
                stray = next((c for c in normal if not _PATH_CHARACTER.fullmatch(c)), None)
                problem = f"has {stray!r}" if stray else "has a name starting with '-' or '+'"
                raise self.fail(path, f"{text!r} {problem}: a path here takes letters, digits, "
                                      "'_', '-', '+' and '.' in names joined by '/' (rename the "
                                      "file)")
            target = self.service_dir / candidate
            try:
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
                        raise self.fail(path, f"{text!r} contains a symlink leading outside the "
                                              "folder")
            except (RuntimeError, OSError) as error:  # a symlink loop, or unreadable
                reason = "a symlink loop" if isinstance(error, RuntimeError) or \
                    getattr(error, "strerror", None) == "Too many levels of symbolic links" \
                    else f"something unreadable ({getattr(error, 'strerror', None) or error})"
                raise self.fail(path, f"{text!r} contains {reason}") from None
            return normal

        return check

    def sources(self, value: Any, path: KeyPath) -> tuple[str, ...]:
        if isinstance(value, list) and len(value) > MAX_SOURCES:
            raise self.fail(path, f"lists {len(value)} entries, more than {MAX_SOURCES}: each is "
                                  "a layer of the image and Docker stops at about 125; list the "
                                  "folders rather than the files in them")
        paths: tuple[str, ...] = self.listing(self.relative_file(directory_ok=True),
                                              non_empty=True)(value, path)
        return paths

    def flavor(self, value: Any, path: KeyPath) -> str:
        text = self.string(value, path)
        if text not in self.flavors:
            close = difflib.get_close_matches(text, list(self.flavors), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.fail(path, f"unknown flavor {text!r}{hint}; known: {', '.join(self.flavors)}")
        # The longest tag a flavor gives an image: <service>:prod-<flavor>-debug-<git sha>.
        if problem := reference.tag_problem(f"prod-{text}-debug-0123456789ab"):
            raise self.fail(path, f"flavor {text!r} can't be part of an image tag: {problem}")
        return text

    def choice(self, options: tuple[str, ...]) -> Check:
        def check(value: Any, path: KeyPath) -> str:
            text = self.string(value, path)
            if text not in options:
                raise self.fail(path, f"{text!r} is not one of {', '.join(options)}")
            return text

        return check

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
    otel_fields = {
        "endpoint": Field(v.url(credentials_advice="give the key at run time "
                                "(docker run -e HONEYCOMB_API_KEY=… or OTEL_EXPORTER_OTLP_HEADERS)")),
        "resource_attributes": Field(lambda value, path: _resource_attributes(v, value, path),
                                     default=()),
        "sampler": Field(v.choice(SAMPLERS)),
        "sampler_ratio": Field(_ratio(v)),
        "mode": Field(v.choice(OTEL_MODES), default="auto"),
    }
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
        "name": Field(v.service_name, required=True),
        "description": Field(v.string, default=""),
        "version": Field(v.matching(re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*"), "version"),
                         default="0.0.0"),
        "source_url": Field(v.url(), default=""),
        "port": Field(v.integer(1, 65535), required=True),
        "health": Field(v.optional(v.health_path)),
        "requirements": Field(v.relative_file(directory_ok=False)),
        "pyproject": Field(v.relative_file(directory_ok=False)),
        "lock": Field(v.relative_file(directory_ok=False)),
        "sources": Field(v.sources, required=True),
        "env": Field(v.variables("env"), default=()),
        "build_args": Field(v.variables("build_args"), default=()),
        "build_commands": Field(v.listing(command, unique=False), default=()),
        "dev": Field(lambda value, path: v.mapping(value, path, {
            "command": Field(command, required=True),
            "base": Field(v.optional(image_ref)),
            "apt_packages": Field(v.listing(v.matching(_PACKAGE, "Debian package name")),
                                  default=()),
            "pip_packages": Field(v.listing(v.pip_requirement), default=()),
        }), required=True),
        "prod": Field(lambda value, path: v.mapping(value, path, {
            "command": Field(command, required=True),
            "flavors": Field(v.listing(v.flavor, non_empty=True), default=flavors[:1]),
            "pip_packages": Field(v.listing(v.pip_requirement), default=()),
            "python_sources": Field(v.choice(PYTHON_SOURCES), default=BYTECODE_ONLY),
        }), required=True),
        "smoke": Field(v.listing(lambda value, path: v.mapping(value, path, smoke_fields),
                                 unique=False), default=()),
        "policy": Field(lambda value, path: _scan_policy(v, value, path), default=DEFAULT_POLICY),
        "context": Field(lambda value, path: v.mapping(value, path, {
            "allow_secrets": Field(lambda value, path: _allowed_secrets(
                v, value, path, today or date.today()), default=()),
        })["allow_secrets"], default=()),
        "otel": Field(lambda value, path: _otel_options(v, v.mapping(value, path, otel_fields),
                                                        path), default=OtelOptions()),
    })
    if top["name"] != service_dir.name:
        raise doc.error(("name",), f"{top['name']!r} must match its folder name {service_dir.name!r}")
    dev, prod = top["dev"], top["prod"]
    _refuse_untraced_smoke(doc, top["health"], top["smoke"])
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
        prod=ProdSettings(prod["command"], prod["flavors"], prod["pip_packages"],
                          prod["python_sources"]),
        smoke=tuple(SmokeRequest(**entry) for entry in top["smoke"]),
        policy=top["policy"],
        allowed_secrets=top["context"],
        otel=top["otel"],
        build_commands=top["build_commands"],
    )


def untraced_urls(health: str | None) -> tuple[str, ...]:
    """What the instrumentations leave untraced (`OTEL_PYTHON_EXCLUDED_URLS`): the health path, so
    probes don't flood the traces. The instrumentations search each entry anywhere in a request's
    URL; `/` alone excludes nothing (an empty entry)."""
    pattern = (health or "").lstrip("/")
    return (pattern,) if pattern else ()


def _refuse_untraced_smoke(doc: YamlDocument, health: str | None,
                           smoke: list[dict[str, Any]]) -> None:
    """A smoke request expecting spans on the health path would wait for spans that never come:
    the health path is excluded from tracing."""
    for index, entry in enumerate(smoke):
        untraced = any(pattern in entry["path"] for pattern in untraced_urls(health))
        if untraced and (entry["route"] is not None or entry["spans"]):
            key = "route" if entry["route"] is not None else "spans"
            raise doc.error(("smoke", index, key),
                            f"{entry['path']!r} is the health path ({health}), which is excluded "
                            "from tracing (OTEL_PYTHON_EXCLUDED_URLS) so that probes don't flood the "
                            "traces: no span would ever arrive for it. Smoke a route that does the "
                            "app's work, or drop route/spans to check only the status")




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


def _resource_attributes(v: Validator, value: Any, path: KeyPath) -> tuple[tuple[str, str], ...]:
    """`otel.resource_attributes: {team: payments}`: keys as OpenTelemetry names them; values are
    any text (percent-encoded where they are written)."""
    if not isinstance(value, dict):
        raise v.fail(path, f"expected a mapping, got {_kind(value)}")
    pairs = []
    for key, raw in value.items():
        where = (*path, key)
        if not _ATTRIBUTE_KEY.fullmatch(key):
            raise v.fail(where, "is not a valid attribute name (letters, digits, '.', '_', '-')")
        if _OWN_ATTRIBUTES.fullmatch(key):
            raise v.fail(where, "is set by imagewright from the spec and the variant")
        pairs.append((key, v.string(v._as_written(raw, where), where)))
    return tuple(pairs)


def _ratio(v: Validator) -> Check:
    def check(value: Any, path: KeyPath) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise v.fail(path, f"expected a number from 0 to 1, got {value!r}")
        return float(value)

    return check


def _otel_options(v: Validator, fields: dict[str, Any], path: KeyPath) -> OtelOptions:
    ratio_sampler = (fields["sampler"] or "").endswith("traceidratio")
    if ratio_sampler and fields["sampler_ratio"] is None:
        raise v.fail(path, f"sampler {fields['sampler']!r} needs a sampler_ratio (0 to 1)")
    if fields["sampler_ratio"] is not None and not ratio_sampler:
        raise v.fail((*path, "sampler_ratio"), "goes with a *traceidratio sampler")
    return OtelOptions(**fields)


def discover_services(images_dir: Path, flavors: tuple[str, ...], root: Path | None = None
                      ) -> list[ServiceSpec]:
    """Every `images/*/image.yaml`, sorted by name. An image.yaml that is there but unreadable (a
    dangling or looping symlink, a FIFO) is an error, not a service silently left out."""
    if not images_dir.is_dir():
        raise SpecError(str(images_dir), "", "no such folder")
    return [
        load_spec(folder, flavors, root)
        for folder in sorted(images_dir.iterdir())
        if folder.is_dir() and os.path.lexists(folder / SPEC_FILENAME)
    ]
