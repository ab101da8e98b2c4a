"""A Guess → `images/<name>/`: the app's source copied in (or left in place) and an `image.yaml`
that the spec validator accepts, written only once everything is ready.

The new folder is assembled beside `images/` under a hidden staging name and validated there
(load_spec); only then is it moved into place, so a failure leaves nothing half-written. A spec
that exists already is never replaced without `force`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.core.errors import SpecError, UserError
from builder.core.files import atomic_write
from builder.init.detect import Guess
from builder.spec.service import SPEC_FILENAME, ServiceSpec, load_spec

# The app's own Dockerfile and ignore file are kept beside the spec (compare can build "your
# image today" from them); the build context leaves them out of imagewright's images.
KEPT_ANYWAY = ("Dockerfile", ".dockerignore")


@dataclass(frozen=True)
class Written:
    folder: Path
    spec: ServiceSpec
    copied: tuple[str, ...]  # relative paths copied from the app's folder
    not_copied: tuple[str, ...]  # left out by the build context's rules (secrets, caches, VCS)
    in_place: bool
    replaced: bool  # an existing spec was overwritten (--force)


def comment(text: str) -> str:
    """Text from the app's files (paths, names) made safe for a one-line YAML comment."""
    return "".join(char if char.isprintable() else "?" for char in text)


def q(value: str) -> str:
    """A YAML scalar for any string: JSON's double-quoted form is valid YAML."""
    return json.dumps(value, ensure_ascii=False)


def flow(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(q(value) for value in values) + "]"


def spec_text(result: Guess, flavors: tuple[str, ...], origin: str) -> str:
    """The image.yaml for a guess, with where each guess came from as comments."""
    deps = result.dependencies
    lines = [f"# Written by `imagewright init` from {comment(origin)}: check what it guessed (the comments",
             "# say where each value came from), then `make build-dev SERVICE=" + result.name + "`.",
             f"name: {q(result.name)}",
             f"port: {result.port.value}  # {comment(result.port.source)}"]
    if result.health:
        lines.append(f"health: {q(result.health.value)}  # {comment(result.health.source)}")
    else:
        lines.append('health: "/"  # no health route found: check that / answers 2xx')
    if deps.requirements:
        lines.append(f"requirements: {q(deps.requirements)}")
    elif deps.pyproject:
        lines.append(f"pyproject: {q(deps.pyproject)}")
        if deps.lock:
            lines.append(f"lock: {q(deps.lock)}  # installed hash-checked")
    lines.append(f"sources: {flow(result.sources)}")
    if result.env:
        lines.append("env:")
        lines.extend(f"  {name}: {q(value)}" for name, value in result.env)
        if any(name == "DJANGO_SETTINGS_MODULE" for name, _ in result.env):
            lines[-1] += "  # from manage.py; opentelemetry-instrument needs it set"
    if result.env_names:
        lines.append("# The app reads these at run time; pass them with `docker run -e` (values are")
        lines.append("# never copied here): "
                     + comment(", ".join(f.value for f in result.env_names[:12])))
    if result.build_commands:
        lines.append("build_commands:")
        lines.extend(f"  - {flow(command)}" for command in result.build_commands)
    if result.otel_setup:
        lines.append("# The app sets up OpenTelemetry itself; the image runs it under")
        lines.append("# opentelemetry-instrument, whose provider wins: that setup is dead code there")
        lines.append("# unless it steps aside when a provider exists. Where: "
                     + comment(", ".join(found.source for found in result.otel_setup[:4])))
    lines += ["dev:", f"  command: {flow(result.dev_command)}",
              "prod:", f"  command: {flow(result.prod_command)}",
              f"  flavors: {flow(flavors)}"]
    if result.added_packages:
        lines.append(f"  pip_packages: {flow(result.added_packages)}  # added by init: the app "
                     "declares no production server")
    if result.smoke:
        lines.append("smoke:")
        for route in result.smoke:
            entry = f"  - {{path: {q(route.path)}, status: {route.status}, route: {q(route.route)}"
            if route.spans:
                entry += f", spans: {flow(route.spans)}"
            lines.append(entry + f"}}  # {comment(route.source)}")
    return "\n".join(lines) + "\n"


def write_service(result: Guess, app_folder: Path, images_dir: Path, text: str, *,
                  force: bool, kept: set[str], load: Callable[[Path], ServiceSpec]) -> Written:
    """Write `images/<name>/`. `kept` is what a build context would send of the app's folder (the
    project's ignore rules): only that is copied; `load(folder)` validates a service's spec."""
    target = images_dir / result.name
    if target.resolve() == app_folder.resolve():
        return _in_place(target, text, force=force, load=load)
    existing = target / SPEC_FILENAME
    if existing.exists() and not force:
        raise UserError(f"{existing}: a spec exists already (init never overwrites one; pass "
                        "--force to replace it)")
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} exists and is not a folder")
    copied = sorted(path for path in kept if (app_folder / path).is_file()
                    and not (app_folder / path).is_symlink() and path != SPEC_FILENAME)
    copied += [name for name in KEPT_ANYWAY if (app_folder / name).is_file()]
    left = {path.relative_to(app_folder).as_posix() for path in app_folder.rglob("*")
            if path.is_file()} - set(copied) - {SPEC_FILENAME}
    # A folder nothing was copied from is named once (`.git/`), other files by their path.
    copied_tops = {path.split("/")[0] for path in copied}
    not_copied = sorted({f"{path.split('/')[0]}/" if "/" in path and path.split("/")[0]
                         not in copied_tops else path for path in left})
    images_dir.mkdir(parents=True, exist_ok=True)
    staging_parent = Path(tempfile.mkdtemp(prefix=".init-", dir=images_dir))
    try:
        staging = staging_parent / result.name
        staging.mkdir()
        for relative in copied:
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(app_folder / relative, destination)
        (staging / SPEC_FILENAME).write_text(text, encoding="utf-8")
        _validate(load, staging, f"{staging_parent.name}/")  # before anything is moved
        replaced = existing.exists()
        if not target.exists():
            staging.rename(target)
        else:  # --force over an existing folder: the app's files are updated, the spec last
            for relative in copied:
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(staging / relative, destination)
            atomic_write(existing, text)
    finally:
        shutil.rmtree(staging_parent, ignore_errors=True)
    return Written(target, load(target), tuple(copied), tuple(not_copied), False, replaced)


def _in_place(target: Path, text: str, *, force: bool, load: Callable[[Path], ServiceSpec]
              ) -> Written:
    """The app is already `images/<name>/`: only image.yaml is written (and validated first,
    from a copy of the folder)."""
    existing = target / SPEC_FILENAME
    if existing.exists() and not force:
        raise UserError(f"{existing}: a spec exists already (init never overwrites one; pass "
                        "--force to replace it)")
    with tempfile.TemporaryDirectory(prefix=".init-", dir=target.parent) as staging_parent:
        staging = Path(staging_parent) / target.name
        shutil.copytree(target, staging, symlinks=True)
        (staging / SPEC_FILENAME).write_text(text, encoding="utf-8")
        _validate(load, staging, f"{Path(staging_parent).name}/")
    replaced = existing.exists()
    atomic_write(existing, text)
    return Written(target, load(target), (), (), True, replaced)


def _validate(load: Callable[[Path], ServiceSpec], staging: Path, staging_part: str) -> None:
    """The guessed spec must pass the validator; if not, nothing is written and the message
    names the spec where it would have been."""
    try:
        load(staging)
    except SpecError as error:
        raise UserError(f"init: the guessed spec is not valid, nothing was written: "
                        f"{error.message.replace(staging_part, '')}") from None


def validated_loader(flavors: tuple[str, ...], root: Path) -> Callable[[Path], ServiceSpec]:
    return lambda folder: load_spec(folder, flavors, root)
