"""`templates/catalog.yaml` → typed Catalog: which base each variant/flavor builds on, and recipes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from builder import naming
from builder.core.errors import SpecError
from builder.core.yamlfile import load_yaml
from builder.spec.service import ServiceSpec


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
class Target:
    """One buildable thing: `dev`, or `prod` in one flavor."""

    variant: str
    flavor: str | None
    template: str
    base: str
    builder: str
    user: int
    debug_twin: DebugTwin | None = None

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
        return [dev, *(self.flavors[name] for name in service.prod.flavors)]

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
    doc = load_yaml(templates_dir / "catalog.yaml", "templates/catalog.yaml")
    data: dict[str, Any] = doc.data
    try:
        bases = {ref: _base(ref, entry) for ref, entry in data["bases"].items()}
        dev = _target("dev", None, data["variants"]["dev"])
        flavors = {name: _target("prod", name, entry) for name, entry in data["flavors"].items()}
    except (KeyError, TypeError) as exc:
        raise SpecError(doc.file, str(exc), "malformed catalog entry") from None
    return Catalog(bases, dev, flavors)


def _base(ref: str, entry: dict[str, Any]) -> BaseImage:
    raw = entry.get("bootstrap")
    recipe: MmdebstrapRecipe | DockerfileRecipe | None = None
    if raw and raw["kind"] == "mmdebstrap":
        keyring = raw.get("keyring")
        recipe = MmdebstrapRecipe(
            suite=raw["suite"],
            components=tuple(raw.get("components", ["main"])),
            include=tuple(raw.get("include", [])),
            keyring=Keyring(**keyring) if keyring else None,
        )
    elif raw and raw["kind"] == "dockerfile":
        recipe = DockerfileRecipe(raw["template"], raw["values"], raw["from"])
    return BaseImage(ref, entry["os"], entry["family"], str(entry["python"]), recipe,
                     entry.get("unavailable_reason", ""))


def _target(variant: str, flavor: str | None, entry: dict[str, Any]) -> Target:
    twin = entry.get("debug_twin")
    return Target(variant, flavor, entry["template"], entry["base"], entry["builder"],
                  int(entry["user"]),
                  DebugTwin(twin["template"], twin["tools_from"]) if twin else None)


def _with_base(target: Target, base: str | None) -> Target:
    return target if base is None else replace(target, base=base, builder=base)
