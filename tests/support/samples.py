"""The services and flavors of this checkout, for test parameters: read from `images/` and
`templates/catalog.yaml` at collection time, so adding a service or a flavor needs no test edit."""

from __future__ import annotations

from pathlib import Path

from builder.project import Project

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Project(ROOT)

SERVICES: tuple[str, ...] = tuple(spec.name for spec in PROJECT.services())
FLAVORS: tuple[str, ...] = PROJECT.catalog.flavor_names
# (service, flavor) for every prod flavor a service accepts, in its order of preference.
PROD_TARGETS: tuple[tuple[str, str], ...] = tuple(
    (spec.name, flavor) for spec in PROJECT.services() for flavor in spec.prod.flavors)
# (service, flavor) for every prod flavor of a service that has a debug twin.
DEBUG_TWINS: tuple[tuple[str, str], ...] = tuple(
    (service, flavor) for service, flavor in PROD_TARGETS
    if PROJECT.catalog.flavors[flavor].debug_twin is not None)

# The smallest valid image.yaml (with app.py and requirements.txt beside it): what spec tests vary.
MINIMAL_SPEC = """\
name: svc
port: 8080
health: /health
requirements: requirements.txt
sources: [app.py]
dev: {command: [python, app.py]}
prod: {command: [python, app.py], flavors: [distroless]}
"""
