"""`templates/layout.yaml` → Layout: paths inside the images and in the build context, and the
build-arg names. The templates get the same data as `layout`, so each path is written once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from builder.core.yamlfile import YamlDocument, load_yaml

LAYOUT_FILE = "layout.yaml"


@dataclass(frozen=True)
class ImagePaths:
    venv: str
    lock_file: str
    pyvenv_cfg: str
    instrumentations: str
    otel_plan: str
    app: str
    runtime: str
    scratch: str
    pip_cache: str
    tmpfs: str

    @property
    def python(self) -> str:
        return f"{self.venv}/bin/python"


@dataclass(frozen=True)
class ContextPaths:
    services: str
    runtime: str
    build_ca_secret: str
    build_ca: str
    requirements: str

    def service_dir(self, service: str) -> str:
        """Where a service's own files are in the build context: `images/<service>`."""
        return f"{self.services}/{service}"


@dataclass(frozen=True)
class BuildArgs:
    revision: str
    created: str
    base_digest: str
    base_provenance: str
    prod_image: str


@dataclass(frozen=True)
class Layout:
    image: ImagePaths
    context: ContextPaths
    build_args: BuildArgs


def load_layout(templates_dir: Path) -> Layout:
    doc = load_yaml(templates_dir / LAYOUT_FILE, f"templates/{LAYOUT_FILE}")
    return Layout(_section(doc, "image", ImagePaths), _section(doc, "context", ContextPaths),
                  _section(doc, "build_args", BuildArgs))


def _section(doc: YamlDocument, key: str, kind: Any) -> Any:
    data = doc.data.get(key) if isinstance(doc.data, dict) else None
    if not isinstance(data, dict):
        raise doc.error((key,), "expected a mapping")
    names = [field.name for field in fields(kind)]
    for name in data:
        if name not in names:
            raise doc.error((key, name), f"unknown key (known: {', '.join(names)})")
    for name in names:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise doc.error((key, name) if name in data else (key,),
                            f"missing or empty '{name}'" if name not in data else "expected a string")
    return kind(**{name: data[name] for name in names})

