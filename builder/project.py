"""Where things live in an imagewright checkout, and the objects every command starts from."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from builder.core.errors import SpecError, UserError
from builder.render.dockerfiles import Renderer
from builder.render.pins import load_pins
from builder.spec import reference
from builder.spec.catalog import Catalog, load_catalog
from builder.spec.layout import Layout, load_layout
from builder.spec.service import ServiceSpec, discover_services, load_spec


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def cache_dir(self) -> Path:
        return self.root / ".cache"

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.templates_dir)

    @cached_property
    def layout(self) -> Layout:
        return load_layout(self.templates_dir)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.templates_dir, self.catalog, self.layout, load_pins(self.build_dir))

    def services(self) -> list[ServiceSpec]:
        return discover_services(self.images_dir, self.catalog.flavor_names, self.root)

    def service(self, name: str) -> ServiceSpec:
        # A name from the command line or an image label: never a path, whatever it holds.
        if problem := reference.repository_name_problem(name):
            raise UserError(f"{name!r} is not a service name: it {problem}")
        folder = self.images_dir / name
        if not os.path.lexists(folder / "image.yaml"):  # there but unreadable: load_spec says why
            known = ", ".join(spec.name for spec in self.services()) or "none"
            raise UserError(f"images/{name}/image.yaml: no such service (known: {known})")
        return load_spec(folder, self.catalog.flavor_names, self.root)

    def display(self, path: Path) -> str:
        """`path` as people read it in messages and reports: relative to the project when inside."""
        resolved, root = path.resolve(), self.root.resolve()
        return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)

    def select(self, names: list[str] | None) -> list[ServiceSpec]:
        """The named services, or every service when no name is given."""
        return [self.service(name) for name in names] if names else self.services()

    def selection(self, names: list[str], everything: bool, *, required_by: str = ""
                  ) -> list[ServiceSpec]:
        """What a command's `SERVICE…`/`--all` arguments select. With neither, every service,
        unless the command (`required_by`) wants one said explicitly."""
        if everything or (not names and not required_by):
            return self.services()
        if not names:
            raise UserError(f"{required_by}: name a service or pass --all")
        return self.select(names)

    def revision(self) -> tuple[str, bool]:
        """(short git sha, dirty?) of the checkout; ("unknown", False) outside git."""
        def git(*args: str) -> str:
            result = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True,
                                    text=True, check=False)
            return result.stdout.strip() if result.returncode == 0 else ""

        sha = git("rev-parse", "--short", "HEAD")
        return (sha or "unknown", bool(sha and git("status", "--porcelain", "--", "images",
                                                   "templates")))


def find_project(start: Path) -> Project:
    for folder in (start, *start.parents):
        if (folder / "templates" / "catalog.yaml").is_file() and (folder / "images").is_dir():
            return Project(folder)
    raise SpecError(str(start), "", "not inside an imagewright project (no templates/catalog.yaml)")
