"""The project → `build/docker-bake.json`: every service's targets for `docker buildx bake`.

Pure, like the Dockerfile renders, and committed beside them (`render --check` holds it current).
Each target builds a committed Dockerfile from the checkout as it is: the context is the project
root, narrowed by the `.dockerignore` beside that Dockerfile to the service's folder and
imagewright's run-time files, as the tool's own builds send it. The build CA is a secret read from
the file `$IMAGEWRIGHT_BUILD_CA` names; the revision in tags and labels is `$IMAGEWRIGHT_REVISION`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from builder import naming
from builder.core.errors import UserError
from builder.spec.catalog import Catalog
from builder.spec.layout import Layout
from builder.spec.service import ServiceSpec

# Where a Debian or Ubuntu machine (and GitHub's runners) keep the system's CA bundle.
DEFAULT_BUILD_CA = "/etc/ssl/certs/ca-certificates.crt"
UNKNOWN = "unknown"  # what the tool records outside git, and the labels' ARG defaults


def _variable(name: str) -> str:
    return f"${{{name}}}"


def bake_definition(catalog: Catalog, layout: Layout, services: Sequence[ServiceSpec],
                    build_dir: Path) -> dict[str, Any]:
    """Targets `<service>-dev` and `<service>-prod-<flavor>`; groups `dev` (every dev target),
    `prod` (each service's preferred flavor, also tagged `<service>:prod`, as `make build-prod`
    picks it where every base is available), `default` (both) and one per service (all its
    targets). `build_dir` is relative to the project root, where bake runs."""
    revision = _variable(layout.build_args.revision)
    targets: dict[str, Any] = {}
    groups: dict[str, list[str]] = {naming.BAKE_GROUP_DEV: [], naming.BAKE_GROUP_PROD: []}
    for service in services:
        if service.name in naming.BAKE_GROUPS:
            raise UserError(f"{service.spec_file}: name: {service.name!r} is also the name of a "
                            f"bake group ({', '.join(naming.BAKE_GROUPS)}): rename the service")
        own: list[str] = []
        for target in catalog.targets(service):
            labels = [target.label]
            preferred = target.flavor is not None and target.flavor == service.prod.flavors[0]
            if preferred:
                labels.append(target.variant)
            name = naming.bake_target(service.name, target.label)
            targets[name] = {
                "context": ".",
                "dockerfile": naming.dockerfile_path(build_dir, service.name, target.label).as_posix(),
                "tags": list(naming.build_tags(service.name, labels, revision)),
                "args": {
                    layout.build_args.revision: revision,
                    layout.build_args.created: "${timestamp()}",
                },
                "secret": [f"id={layout.context.build_ca_secret},src={_variable(naming.BUILD_CA_ENV)}"],
            }
            own.append(name)
            if target.flavor is None:
                groups[naming.BAKE_GROUP_DEV].append(name)
            elif preferred:
                groups[naming.BAKE_GROUP_PROD].append(name)
        groups[service.name] = own
    groups[naming.BAKE_GROUP_DEFAULT] = [naming.BAKE_GROUP_DEV, naming.BAKE_GROUP_PROD]
    return {
        "variable": {
            layout.build_args.revision: {"default": UNKNOWN},
            naming.BUILD_CA_ENV: {"default": DEFAULT_BUILD_CA},
        },
        "group": {name: {"targets": members} for name, members in sorted(groups.items())},
        "target": targets,
    }


def bake_text(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=2) + "\n"
