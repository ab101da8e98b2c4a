"""Every name imagewright derives from a target, in one place: image tags, rendered Dockerfile
paths, report folders, and the label keys it writes on images and containers and reads back.

Nothing else formats these: a new variant or flavor changes its names here only.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from types import MappingProxyType

# ---- label keys -------------------------------------------------------------------------------
# On every image imagewright builds (the templates get them as `label.*`); scan and compare read
# them back to know what an image is.
SERVICE_LABEL = "io.imagewright.service"
VARIANT_LABEL = "io.imagewright.variant"
FLAVOR_LABEL = "io.imagewright.flavor"
PYTHON_LABEL = "io.imagewright.python"
BASE_PROVENANCE_LABEL = "io.imagewright.base.provenance"
DEBUG_TWIN_LABEL = "io.imagewright.debug-twin-of"
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
# On bootstrapped bases: where the base came from, and a digest of the recipe it was made by.
PROVENANCE_LABEL = "io.imagewright.provenance"
RECIPE_LABEL = "io.imagewright.recipe"
# On every container imagewright starts, so cleanup finds them (see engine/containers.py).
MANAGED_LABEL = "io.imagewright.managed"
RUN_LABEL = "io.imagewright.run"
PURPOSE_LABEL = "io.imagewright.purpose"

# The names templates use: `{{ label.service }}` renders `io.imagewright.service`.
TEMPLATE_LABELS = MappingProxyType({
    "service": SERVICE_LABEL, "variant": VARIANT_LABEL, "flavor": FLAVOR_LABEL,
    "python": PYTHON_LABEL, "base_provenance": BASE_PROVENANCE_LABEL,
    "debug_twin_of": DEBUG_TWIN_LABEL, "base_name": BASE_NAME_LABEL,
})

# ---- targets and tags -------------------------------------------------------------------------
NAIVE = "naive"
# "Your image today": built by compare from the service folder's own Dockerfile.
YOURS = "yours"
OWN_DOCKERFILE = "Dockerfile"
DEBUG_SUFFIX = "-debug"


def target_label(variant: str, flavor: str | None) -> str:
    """`dev`, or `prod-<flavor>`: a target's name in tags, Dockerfile names and report folders."""
    return variant if not flavor else f"{variant}-{flavor}"


def debug_label(label: str) -> str:
    return f"{label}{DEBUG_SUFFIX}"


def image_ref(service: str, label: str) -> str:
    """`<service>:<label>`: `backend-flask:dev`, `backend-flask:prod` (the flavor people deploy),
    `backend-flask:prod-distroless`, `backend-flask:naive`, `backend-flask:yours`."""
    return f"{service}:{label}"


def revision_ref(ref: str, revision: str) -> str:
    """The same tag pinned to a source revision: `backend-flask:dev-1a2b3c4`."""
    return f"{ref}-{revision}"


def build_tags(service: str, labels: list[str], revision: str) -> tuple[str, ...]:
    """Every tag one build gets: each label, plain and pinned to the revision."""
    return tuple(ref for label in labels
                 for ref in (image_ref(service, label), revision_ref(image_ref(service, label),
                                                                      revision)))


def network_name(run_id: str, serial: int) -> str:
    """A network one run of imagewright makes (`verify` of services together)."""
    return f"imagewright-{run_id}-{serial}"


# ---- the dev loop (build/compose.yaml) ----------------------------------------------------------
COMPOSE_FILE = "compose.yaml"
COMPOSE_NAME = "imagewright-dev"  # the project name in the file, for running it by hand
# Containers reach a receiver on the host under this name (`host-gateway`: the bridge's gateway).
HOST_ALIAS = "host.docker.internal"
# The variables build/compose.yaml takes: `dev` sets them, and so can a person running it by hand.
RECEIVER_PORT_VARIABLE = "IMAGEWRIGHT_RECEIVER_PORT"
RUN_VARIABLE = "IMAGEWRIGHT_RUN"
DEV_PURPOSE = "dev"


def compose_path(build_dir: Path) -> Path:
    return build_dir / COMPOSE_FILE


def port_variable(service: str) -> str:
    """`IMAGEWRIGHT_PORT_BACKEND_FLASK`: the host port the dev loop publishes a service on."""
    return "IMAGEWRIGHT_PORT_" + re.sub(r"[^A-Z0-9]", "_", service.upper())


def compose_project(root: Path) -> str:
    """The Compose project name of one checkout's dev loop: its folder's name, plus a digest of its
    path so two checkouts (or a test's copy) never share, or take down, each other's containers."""
    resolved = str(root.resolve())
    slug = re.sub(r"[^a-z0-9_-]+", "-", root.resolve().name.lower()).strip("-_") or "project"
    return f"imagewright-{slug}-{hashlib.sha256(resolved.encode()).hexdigest()[:6]}"


# ---- files in the checkout --------------------------------------------------------------------
DOCKERIGNORE = ".dockerignore"
PINS_FILE = "bases.lock.yaml"
BAKE_FILE = "docker-bake.json"  # build/docker-bake.json: every target, for `docker buildx bake`
# The build machine's CA bundle for build stages, when not the system's: a file path (the tool's
# builds and bake's secret read it).
BUILD_CA_ENV = "IMAGEWRIGHT_BUILD_CA"

# ---- bake targets and groups ------------------------------------------------------------------
BAKE_GROUP_DEFAULT = "default"
BAKE_GROUP_DEV = "dev"
BAKE_GROUP_PROD = "prod"
BAKE_GROUPS = (BAKE_GROUP_DEFAULT, BAKE_GROUP_DEV, BAKE_GROUP_PROD)


def bake_target(service: str, label: str) -> str:
    """`backend-flask-dev`, `backend-flask-prod-distroless`: a target's name in the bake file."""
    return f"{service}-{label}"


def dockerfile_name(label: str) -> str:
    return f"Dockerfile.{label}"


def rendered_dir(build_dir: Path, service: str) -> Path:
    """`build/<service>/`: the committed renders of one service."""
    return build_dir / service


def dockerfile_path(build_dir: Path, service: str, label: str) -> Path:
    return rendered_dir(build_dir, service) / dockerfile_name(label)


def dockerignore_beside(dockerfile: Path) -> Path:
    """`Dockerfile.dev.dockerignore`: the ignore file BuildKit reads for that Dockerfile alone."""
    return dockerfile.with_name(dockerfile.name + DOCKERIGNORE)


def report_dir(reports_dir: Path, service: str, label: str | None = None) -> Path:
    """`reports/<service>/` or `reports/<service>/<label>/`."""
    folder = reports_dir / service
    return folder if label is None else folder / label


SERVICE_MAP_DIR = "service-map"


def service_map_report(reports_dir: Path, label: str, extension: str) -> Path:
    """`reports/service-map/<label>.<extension>`: the map of one run of services together
    (`verify`'s `dev` or `prod`, or the dev loop's `dev-loop`)."""
    return reports_dir / SERVICE_MAP_DIR / f"{label}.{extension}"
