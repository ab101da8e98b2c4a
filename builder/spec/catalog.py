"""`templates/catalog.yaml` → typed Catalog: which base each variant/flavor builds on, and recipes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any

from builder import naming
from builder.core.yamlfile import KeyPath, YamlDocument, load_yaml
from builder.spec import reference
from builder.spec.service import KEEP_SOURCES, Check, Field, ServiceSpec, Validator

# The package families templates/_partials/macros.j2 installs with; `none`: no package manager.
FAMILIES = ("apt", "apk", "none")
# A builder stage installs python3-venv and pip, so it needs a package manager.
BUILDER_FAMILIES = ("apt", "apk")
# Part of tags (`<service>:prod-<flavor>`), file names and report folders.
_FLAVOR_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


@dataclass(frozen=True)
class Keyring:
    file: str
    package: str
    suite: str


@dataclass(frozen=True)
class MmdebstrapRecipe:
    suite: str
    components: tuple[str, ...]
    include: tuple[str, ...]
    keyring: Keyring | None


@dataclass(frozen=True)
class DockerfileRecipe:
    template: str
    values: str
    from_image: str
    # `set:` in the catalog: values that replace the values file's, so two bases can share one
    # recipe (e.g. the distroless base with and without the stdlib's sources).
    settings: tuple[tuple[str, str | int | bool], ...] = ()


@dataclass(frozen=True)
class BaseImage:
    ref: str
    os: str
    family: str
    python: str
    recipe: MmdebstrapRecipe | DockerfileRecipe | None
    unavailable_reason: str


@dataclass(frozen=True)
class DebugTwin:
    """A shell-less flavor's twin: its image plus busybox, from the `tools_from` base's archive."""

    template: str
    tools_from: str


@dataclass(frozen=True)
class Promises:
    """What an image of a variant or flavor is, as templates/catalog.yaml declares it.

    `None`: nothing promised either way. builder/inspect/checks.py holds one registered check per
    field, each with a stable id, and evaluates them on a measured image.
    """

    user: int  # the uid (and gid) it runs as: the templates' USER, so written only here
    runs_as_root: bool | None = None
    shell: bool | None = None
    package_manager: bool | None = None
    pip: bool | None = None
    compilers: bool | None = None
    setuid: bool | None = None
    world_writable: bool | None = None
    package_caches: bool | None = None


# The yes/no promises, in catalog order.
PROMISE_FLAGS = tuple(field.name for field in fields(Promises) if field.name != "user")


@dataclass(frozen=True)
class Target:
    """One buildable thing: `dev`, or `prod` in one flavor."""

    variant: str
    flavor: str | None
    template: str
    base: str
    builder: str
    promises: Promises
    debug_twin: DebugTwin | None = None
    # The base `prod.python_sources: keep` builds on, when `base` has no stdlib sources to keep.
    base_with_sources: str | None = None

    @property
    def user(self) -> int:
        return self.promises.user

    @property
    def label(self) -> str:
        return naming.target_label(self.variant, self.flavor)

    @property
    def debug_label(self) -> str:
        return naming.debug_label(self.label)


@dataclass(frozen=True)
class Catalog:
    bases: dict[str, BaseImage]
    dev: Target
    flavors: dict[str, Target]

    @property
    def flavor_names(self) -> tuple[str, ...]:
        return tuple(self.flavors)

    def targets(self, service: ServiceSpec) -> list[Target]:
        """dev first, then every flavor the service accepts, in its order of preference."""
        dev = _with_base(self.dev, service.dev.base)
        return [dev, *(self.flavor(service, name) for name in service.prod.flavors)]

    def flavor(self, service: ServiceSpec, name: str) -> Target:
        """One prod flavor as this service builds it: on the flavor's base with the stdlib's
        sources when the service keeps its Python sources."""
        target = self.flavors[name]
        if service.prod.python_sources == KEEP_SOURCES and target.base_with_sources:
            return replace(target, base=target.base_with_sources)
        return target

    def target(self, service: ServiceSpec, variant: str, flavor: str | None) -> Target:
        return next(t for t in self.targets(service) if t.variant == variant and t.flavor == flavor)

    def bases_for(self, services: Iterable[ServiceSpec]) -> set[str]:
        """Every base image (final and builder) the services' targets build on."""
        return {ref for service in services for target in self.targets(service)
                for ref in (target.base, target.builder)}

    def base(self, ref: str) -> BaseImage:
        if ref in self.bases:
            return self.bases[ref]
        # A base the catalog doesn't know (a spec's own `dev.base`) can only come from local or pull.
        return BaseImage(ref, os="", family="apt", python="", recipe=None,
                         unavailable_reason="it is not present locally, cannot be pulled and has "
                                            "no bootstrap recipe")


def load_catalog(templates_dir: Path) -> Catalog:
    """Load and validate `templates/catalog.yaml` with image.yaml's validator: one SpecError naming
    the file, the line and the key for an unknown key, a family the templates don't know, a
    reference to a base it doesn't declare or a flavor whose Python differs from dev's."""
    doc = load_yaml(templates_dir / "catalog.yaml", "templates/catalog.yaml")
    v = Validator(doc, templates_dir, ())
    template = _template_file(v, templates_dir)
    image_ref = v.matching(reference.IMAGE_REFERENCE, "image reference")
    keyring = {"file": Field(v.string, required=True), "package": Field(v.string, required=True),
               "suite": Field(v.string, required=True)}
    recipes: dict[str, dict[str, Field]] = {
        "mmdebstrap": {
            "suite": Field(v.string, required=True),
            "components": Field(v.listing(v.string, non_empty=True), default=("main",)),
            "include": Field(v.listing(v.string), default=()),
            "keyring": Field(v.optional(lambda value, path: v.mapping(value, path, keyring))),
        },
        "dockerfile": {
            "template": Field(template, required=True),
            "values": Field(template, required=True),
            "from": Field(image_ref, required=True),
            "set": Field(lambda value, path: _settings(v, value, path), default=()),
        },
    }

    def recipe(value: Any, path: KeyPath) -> dict[str, Any]:
        """`kind` says which recipe, and so which other keys belong."""
        if not isinstance(value, dict):
            raise v.fail(path, "expected a mapping")
        if "kind" not in value:
            raise v.fail(path, "missing required key 'kind'")
        kind = _one_of(v, tuple(recipes), "a bootstrap kind")(value["kind"], (*path, "kind"))
        return v.mapping(value, path, {"kind": Field(v.string, required=True), **recipes[kind]})

    base_fields = {
        "os": Field(v.string, required=True),
        "family": Field(_one_of(v, FAMILIES, "a package family the templates know"), required=True),
        "python": Field(_python_minor(v), required=True),
        "bootstrap": Field(v.optional(recipe)),
        "unavailable_reason": Field(v.string, default=""),
    }
    target_fields = {
        "template": Field(template, required=True),
        "base": Field(image_ref, required=True),
        "builder": Field(image_ref, required=True),
        "promises": Field(lambda value, path: _promises(v, value, path), required=True),
    }
    flavor_fields = {
        **target_fields,
        "base_with_sources": Field(v.optional(image_ref)),
        "debug_twin": Field(v.optional(lambda value, path: v.mapping(value, path, {
            "template": Field(template, required=True),
            "tools_from": Field(image_ref, required=True),
        }))),
    }
    top = v.mapping(doc.data, (), {
        "bases": Field(_entries(v, image_ref, lambda value, path: v.mapping(value, path,
                                                                           base_fields)),
                       required=True),
        "variants": Field(lambda value, path: v.mapping(value, path, {
            "dev": Field(lambda value, path: v.mapping(value, path, target_fields), required=True),
        }), required=True),
        "flavors": Field(_entries(v, v.matching(_FLAVOR_NAME, "flavor name (lower-case letters, "
                                                              "digits, -)"),
                                  lambda value, path: v.mapping(value, path, flavor_fields),
                                  non_empty=True),
                         required=True),
    })
    bases = {ref: _base(ref, entry) for ref, entry in top["bases"].items()}
    dev = _target("dev", None, top["variants"]["dev"])
    flavors = {name: _target("prod", name, entry) for name, entry in top["flavors"].items()}
    _check_references(doc, bases, dev, flavors)
    _check_settings(doc, templates_dir, bases)
    return Catalog(bases, dev, flavors)


def _check_settings(doc: YamlDocument, templates_dir: Path, bases: dict[str, BaseImage]) -> None:
    """A recipe's `set:` replaces values its values file has: a misspelt key would otherwise be
    ignored by the template and build the other base silently."""
    for base in bases.values():
        if not isinstance(base.recipe, DockerfileRecipe) or not base.recipe.settings:
            continue
        values = load_yaml(templates_dir / base.recipe.values, f"templates/{base.recipe.values}").data
        for key, _ in base.recipe.settings:
            if key not in values:
                close = difflib.get_close_matches(key, list(values), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise doc.error(("bases", base.ref, "bootstrap", "set", key),
                                f"is not a value of templates/{base.recipe.values}{hint}")


def _template_file(v: Validator, templates_dir: Path) -> Check:
    """A file inside templates/ (the sandboxed Jinja loader reads nothing else)."""
    def check(value: Any, path: KeyPath) -> str:
        text = v.string(value, path)
        relative = PurePosixPath(text)
        if relative.is_absolute() or ".." in relative.parts:
            raise v.fail(path, f"{text!r} must be a path inside templates/")
        if not (templates_dir / relative).is_file():
            raise v.fail(path, f"{text!r} is not a file in templates/")
        return text

    return check


def _one_of(v: Validator, choices: tuple[str, ...], what: str) -> Check:
    def check(value: Any, path: KeyPath) -> str:
        text = v.string(value, path)
        if text not in choices:
            close = difflib.get_close_matches(text, list(choices), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise v.fail(path, f"{text!r} is not {what}{hint}; known: {', '.join(choices)}")
        return text

    return check


def _python_minor(v: Validator) -> Check:
    def check(value: Any, path: KeyPath) -> str:
        if isinstance(value, float):  # `3.10` unquoted is the number 3.1
            raise v.fail(path, f"{value!r} is a number; quote it (\"3.12\")")
        text = v.string(value, path)
        if not re.fullmatch(r"\d+\.\d+", text):
            raise v.fail(path, f"{text!r} is not a Python minor version like \"3.12\"")
        return text

    return check


def _boolean(v: Validator) -> Check:
    def check(value: Any, path: KeyPath) -> bool:
        if not isinstance(value, bool):
            raise v.fail(path, f"expected true or false, got {value!r}")
        return value

    return check


def _settings(v: Validator, value: Any, path: KeyPath) -> tuple[tuple[str, str | int | bool], ...]:
    """`set: {stdlib_sources: true}`: plain values (a recipe template renders them as they are)."""
    if not isinstance(value, dict):
        raise v.fail(path, "expected a mapping")
    for key, item in value.items():
        if not isinstance(item, str | int | bool):
            raise v.fail((*path, key), "expected a string, a number or true/false")
    return tuple(value.items())


def _promises(v: Validator, value: Any, path: KeyPath) -> Promises:
    boolean = _boolean(v)
    fields = {name: Field(boolean) for name in PROMISE_FLAGS}
    found = v.mapping(value, path, {"user": Field(v.integer(0, 2**31 - 1), required=True),
                                    **fields})
    if found["runs_as_root"] is not None and found["runs_as_root"] != (found["user"] == 0):
        raise v.fail((*path, "runs_as_root"),
                     f"{str(found['runs_as_root']).lower()} contradicts user: {found['user']}")
    return Promises(**found)


def _entries(v: Validator, key: Check, entry: Check, *, non_empty: bool = False) -> Check:
    """A mapping whose keys are names (base refs, flavor names) rather than fixed fields."""
    def check(value: Any, path: KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise v.fail(path, "expected a mapping")
        if non_empty and not value:
            raise v.fail(path, "must not be empty")
        return {key(name, (*path, name)): entry(item, (*path, name))
                for name, item in value.items()}

    return check


def _check_references(doc: YamlDocument, bases: dict[str, BaseImage], dev: Target,
                      flavors: dict[str, Target]) -> None:
    """Every image named is a declared base; builders can install packages; every flavor runs
    dev's Python minor version (prod's venv is made with the builder's Python, run by the base's)."""
    def known(ref: str, path: KeyPath) -> BaseImage:
        if ref not in bases:
            close = difflib.get_close_matches(ref, list(bases), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise doc.error(path, f"{ref!r} is not declared under bases:{hint}")
        return bases[ref]

    for base in bases.values():
        if isinstance(base.recipe, DockerfileRecipe):
            known(base.recipe.from_image, ("bases", base.ref, "bootstrap", "from"))
    dev_path: KeyPath = ("variants", "dev")
    dev_base = known(dev.base, (*dev_path, "base"))
    for name, flavor in flavors.items():
        if flavor.base_with_sources is not None:
            sources_path: KeyPath = ("flavors", name, "base_with_sources")
            with_sources = known(flavor.base_with_sources, sources_path)
            if with_sources.python != dev_base.python:
                raise doc.error(sources_path, f"flavor {name}: {with_sources.ref} ships Python "
                                              f"{with_sources.python}, dev's base ships "
                                              f"{dev_base.python}")
    targets = [(dev_path, "dev", dev), *((("flavors", name), f"flavor {name}", target)
                                          for name, target in flavors.items())]
    for path, what, target in targets:
        for key in ("base", "builder"):
            base = known(getattr(target, key), (*path, key))
            if base.python != dev_base.python:
                raise doc.error((*path, key), f"{what}: {key} {base.ref} ships Python "
                                              f"{base.python}, dev's base {dev_base.ref} ships "
                                              f"{dev_base.python}: dev and prod must run the same "
                                              "Python minor version")
        builder = bases[target.builder]
        if builder.family not in BUILDER_FAMILIES:
            raise doc.error((*path, "builder"), f"{what}: builder {builder.ref} has no package "
                                                f"manager (family {builder.family}); a builder "
                                                f"needs one of {', '.join(BUILDER_FAMILIES)}")
        if target.debug_twin is not None:
            known(target.debug_twin.tools_from, (*path, "debug_twin", "tools_from"))
            if target.promises.shell is not False:
                raise doc.error((*path, "debug_twin"), f"{what}: a debug twin adds a shell, so "
                                                       "only a flavor that promises `shell: false` "
                                                       "has one")


def _base(ref: str, entry: dict[str, Any]) -> BaseImage:
    raw = entry["bootstrap"]
    recipe: MmdebstrapRecipe | DockerfileRecipe | None = None
    if raw and raw["kind"] == "mmdebstrap":
        keyring = raw["keyring"]
        recipe = MmdebstrapRecipe(
            suite=raw["suite"],
            components=raw["components"],
            include=raw["include"],
            keyring=Keyring(**keyring) if keyring else None,
        )
    elif raw and raw["kind"] == "dockerfile":
        recipe = DockerfileRecipe(raw["template"], raw["values"], raw["from"], raw["set"])
    return BaseImage(ref, entry["os"], entry["family"], entry["python"], recipe,
                     entry["unavailable_reason"])


def _target(variant: str, flavor: str | None, entry: dict[str, Any]) -> Target:
    twin = entry.get("debug_twin")
    return Target(variant, flavor, entry["template"], entry["base"], entry["builder"],
                  entry["promises"],
                  DebugTwin(twin["template"], twin["tools_from"]) if twin else None,
                  entry.get("base_with_sources"))


def _with_base(target: Target, base: str | None) -> Target:
    return target if base is None else replace(target, base=base, builder=base)
