"""How a service declares its dependencies, read and checked: a pip requirements file, or a PEP 621
`pyproject.toml` with or without a lock file (`uv.lock`, `poetry.lock`) beside it.

Pure: files in, data or one SpecError out. What is installed from a lock is decided here too
(`poetry_requirements`), so a lock that cannot be honoured is refused when the spec is loaded, not
half-way through a build. uv's own lock is turned into requirements by uv itself at build time
(builder/build/dependencies.py): uv's export is the upstream, exact reading of its format.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from builder.core.errors import SpecError

UV_LOCK = "uv.lock"
POETRY_LOCK = "poetry.lock"
LOCK_FILES = (UV_LOCK, POETRY_LOCK)
# Poetry 2 records, per package, the groups that need it and under which markers (lock-version
# 2.1); Poetry 1's lock (2.0) does not, and only a re-resolution of the graph could tell.
POETRY_LOCK_VERSION = (2, 1)
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass(frozen=True)
class Dependencies:
    """What the venv stage installs, as the service declares it."""

    declared_in: str  # `requirements.txt`-like or `pyproject.toml`, relative to the service folder
    lock: str | None = None  # `uv.lock` or `poetry.lock` beside pyproject.toml
    hashed: bool = False  # a requirements file whose entries carry `--hash`: installed hash-checked

    @property
    def is_requirements(self) -> bool:
        """A pip requirements file (else a pyproject.toml)."""
        return not self.declared_in.endswith(".toml")

    @property
    def lock_kind(self) -> str | None:
        return PurePosixPath(self.lock).name if self.lock else None

    @property
    def locked(self) -> bool:
        """Installed exactly as written, every download checked against a hash."""
        return self.lock is not None or self.hashed

    @property
    def derived(self) -> bool:
        """The requirements the build installs are made by imagewright (from pyproject.toml or its
        lock) rather than copied from the service folder."""
        return not self.is_requirements

    @property
    def form(self) -> str:
        """How people say it: `requirements.txt`, `pyproject.toml`, `pyproject.toml + uv.lock`."""
        if self.lock:
            return f"{self.declared_in} + {self.lock}"
        return f"{self.declared_in} (with hashes)" if self.hashed else self.declared_in


@dataclass(frozen=True)
class PyProject:
    """The parts of a pyproject.toml that say what to install."""

    display: str
    dependencies: tuple[str, ...]  # PEP 621 `[project].dependencies`, as written
    poetry_dependencies: tuple[str, ...]  # `[tool.poetry.dependencies]` names (Poetry 1 style)
    has_project_table: bool
    poetry_content_hash: str  # what Poetry records in poetry.lock for this pyproject.toml


def hashed_requirements(text: str) -> bool:
    """Whether a requirements file pins hashes: pip then checks every download (hash-checking mode,
    all or nothing), so it is installed on its own, before anything unhashed."""
    return any("--hash=" in line or "--hash " in line for line in _logical_lines(text))


def requirement_names(text: str) -> tuple[str, ...]:
    """The distributions a requirements file names (options, includes and URLs-only lines aside)."""
    names = []
    for line in _logical_lines(text):
        line = re.sub(r"\s--hash[= ]\S+", "", line).strip()
        if not line or line.startswith("-"):
            continue
        try:
            names.append(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            continue
    return tuple(dict.fromkeys(names))


def _logical_lines(text: str) -> list[str]:
    """Lines as pip reads them: comments dropped, backslash continuations joined."""
    joined = re.sub(r"\\\r?\n", " ", text)
    return [re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines()]


def read_toml(path: Path, display: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(display, "", f"cannot read file ({error})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_LINE.search(str(error))
        message = _TOML_LINE.sub("", str(error)).strip()
        raise SpecError(display, "", f"invalid TOML: {message}",
                        int(match[1]) if match else None) from None


def read_pyproject(path: Path, display: str) -> PyProject:
    data = read_toml(path, display)
    project = data.get("project")
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    poetry_deps = poetry.get("dependencies", {}) if isinstance(poetry, dict) else {}
    if project is not None and not isinstance(project, dict):
        raise SpecError(display, "project", "expected a table")
    project = project or {}
    if "dependencies" in (project.get("dynamic") or []):
        raise SpecError(display, "project.dynamic",
                        "dependencies are dynamic (computed by the build backend): lock them "
                        "(uv lock) or list them in a requirements file")
    raw = project.get("dependencies", [])
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise SpecError(display, "project.dependencies", "expected a list of requirement strings")
    for index, item in enumerate(raw):
        try:
            Requirement(item)
        except InvalidRequirement as error:
            raise SpecError(display, f"project.dependencies[{index}]",
                            f"{item!r} is not a valid requirement "
                            f"({str(error).splitlines()[0]})") from None
    names = tuple(canonicalize_name(name) for name in poetry_deps
                  if isinstance(poetry_deps, dict) and name.lower() != "python")
    return PyProject(display, tuple(raw), names, "project" in data, _poetry_content_hash(data))


def _poetry_content_hash(data: dict[str, Any]) -> str:
    """Poetry's `content-hash` of a pyproject.toml (poetry/packages/locker.py, Poetry 2): a sha256
    of the JSON of the sections that decide the lock, so a stale lock is caught without Poetry."""
    project = data.get("project") or {}
    tool = data.get("tool") or {}
    poetry = tool.get("poetry") or {} if isinstance(tool, dict) else {}
    relevant_project = {key: project[key] for key in ("requires-python", "dependencies",
                                                      "optional-dependencies")
                        if isinstance(project, dict) and project.get(key) is not None}
    legacy = ("dependencies", "source", "extras", "dev-dependencies")
    relevant_poetry = {key: poetry.get(key) for key in (*legacy, "group")
                       if poetry.get(key) is not None
                       or (key in legacy and not relevant_project)}
    content: dict[str, Any] = ({"project": relevant_project, "tool": {"poetry": relevant_poetry}}
                               if relevant_project else relevant_poetry)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def check_uv_lock(lock_path: Path, display: str, pyproject: PyProject) -> None:
    """A uv.lock that uv can export and that was made from this pyproject.toml.

    `uv export --locked` would check the latter itself, but only with an interpreter that matches
    the project's `requires-python` on the build machine; the lock records what it was made from
    (the project's `requires-dist`), so the comparison is done here, offline, for any project."""
    data = read_toml(lock_path, display)
    if not isinstance(data.get("version"), int) or not isinstance(data.get("package"), list):
        raise SpecError(display, "", "not a uv lock file (no `version` or `[[package]]`)")
    root = next((package for package in data["package"]
                 if isinstance(package, dict)
                 and isinstance(package.get("source"), dict)
                 and package["source"].get("virtual", package["source"].get("editable")) == "."),
                None)
    if root is None:
        return  # a workspace or an unusual layout: uv's own export is the judge
    locked = {(canonicalize_name(entry.get("name", "")), _specifiers(entry.get("specifier", "")),
               tuple(sorted(entry.get("extras", []))))
              for entry in root.get("metadata", {}).get("requires-dist", [])
              if isinstance(entry, dict)}
    declared = set()
    for item in pyproject.dependencies:
        requirement = Requirement(item)
        declared.add((canonicalize_name(requirement.name), _specifiers(str(requirement.specifier)),
                      tuple(sorted(requirement.extras))))
    if {entry[0] for entry in locked} != {entry[0] for entry in declared} or locked != declared:
        changed = sorted({entry[0] for entry in locked ^ declared})
        raise SpecError(display, "", f"out of date with {pyproject.display} ({', '.join(changed)} "
                                     "differ): run `uv lock` and commit uv.lock")


def _specifiers(text: str) -> frozenset[str]:
    try:
        return frozenset(str(spec) for spec in SpecifierSet(text))
    except InvalidSpecifier:
        return frozenset({text})


def poetry_requirements(lock_path: Path, display: str, pyproject: PyProject | None = None
                        ) -> list[str]:
    """poetry.lock → a pinned requirements file for pip's hash-checking mode: every package of the
    `main` group at its locked version, under the markers Poetry recorded for it, with the hash of
    every file Poetry locked for it (pip checks whichever it downloads). With `pyproject`, a lock
    made from another version of it is refused."""
    data = read_toml(lock_path, display)
    metadata = data.get("metadata", {})
    version = str(metadata.get("lock-version", "")) if isinstance(metadata, dict) else ""
    try:
        parsed = tuple(int(part) for part in version.split("."))
    except ValueError:
        parsed = ()
    if not parsed or not isinstance(data.get("package"), list):
        raise SpecError(display, "", "not a Poetry lock file (no `[metadata] lock-version` or "
                                     "`[[package]]`)")
    if parsed < POETRY_LOCK_VERSION:
        raise SpecError(display, "metadata.lock-version",
                        f"{version} (Poetry 1) does not record which packages the main group "
                        "needs: re-lock with Poetry 2 (`poetry lock`), or export it "
                        "(`poetry export --only main -f requirements.txt -o requirements.txt`) "
                        "and declare `requirements: requirements.txt`")
    recorded = metadata.get("content-hash") if isinstance(metadata, dict) else None
    if pyproject is not None and recorded and recorded != pyproject.poetry_content_hash:
        raise SpecError(display, "metadata.content-hash",
                        f"out of date with {pyproject.display}: run `poetry lock` and commit "
                        "poetry.lock")
    lines = []
    for index, package in enumerate(data["package"]):
        if not isinstance(package, dict):
            continue
        name, pinned = package.get("name"), package.get("version")
        groups = package.get("groups", ["main"])
        if "main" not in groups or not isinstance(name, str) or not isinstance(pinned, str):
            continue
        where = f"package[{index}] ({name})"
        source = package.get("source")
        if isinstance(source, dict) and source.get("type") not in (None, "legacy"):
            raise SpecError(display, where,
                            f"comes from a {source.get('type')} source, which has no hash to check: "
                            "publish it to an index, or vendor it into the service's sources")
        hashes = [entry["hash"] for entry in package.get("files", [])
                  if isinstance(entry, dict) and isinstance(entry.get("hash"), str)]
        if not hashes:
            raise SpecError(display, where, "has no file hashes: re-lock with `poetry lock`")
        markers = package.get("markers")
        marker = markers.get("main") if isinstance(markers, dict) else markers
        line = f"{name}=={pinned}"
        if marker:
            try:
                line += f" ; {Marker(str(marker))}"
            except InvalidMarker as error:
                raise SpecError(display, f"{where}.markers",
                                str(error).splitlines()[0]) from None
        lines.append(" \\\n    ".join([line, *(f"--hash={digest}" for digest in hashes)]))
    return lines
