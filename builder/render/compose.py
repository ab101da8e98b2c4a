"""Every service's spec → build/compose.yaml, the dev loop's Compose file. Pure, like the
Dockerfile renders, and committed and `render --check`ed with them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from builder import naming
from builder.render.dockerfiles import RenderedFile, Renderer
from builder.spec.service import ServiceSpec

TEMPLATE = "compose.yaml.j2"
# Where containers send telemetry when nobody sets the variable: the OTLP/HTTP port collectors use.
DEFAULT_RECEIVER_PORT = 4318


@dataclass(frozen=True)
class ComposeService:
    name: str
    image: str
    port: int
    port_variable: str
    host_port: str  # `${VARIABLE:-port}`: Compose interpolates it
    source: str  # the service folder, relative to build/ (Compose resolves it from there)


def _variable(name: str, default: object) -> str:
    return f"${{{name}:-{default}}}"


def compose_file(renderer: Renderer, services: Sequence[ServiceSpec], build_dir: Path) -> RenderedFile:
    path = naming.compose_path(build_dir)
    entries = [
        ComposeService(
            name=spec.name,
            image=naming.image_ref(spec.name, "dev"),
            port=spec.port,
            port_variable=naming.port_variable(spec.name),
            host_port=_variable(naming.port_variable(spec.name), spec.port),
            # Relative, so the file is the same in every checkout (and in a copy of one).
            source=Path(os.path.relpath(spec.directory.resolve(), build_dir.resolve())).as_posix(),
        )
        for spec in sorted(services, key=lambda spec: spec.name)]
    text = renderer.render_template(
        TEMPLATE, services=entries, host_alias=naming.HOST_ALIAS, project_name=naming.COMPOSE_NAME,
        receiver_port_variable=naming.RECEIVER_PORT_VARIABLE,
        receiver_port=_variable(naming.RECEIVER_PORT_VARIABLE, DEFAULT_RECEIVER_PORT),
        container_labels={naming.MANAGED_LABEL: "1", naming.PURPOSE_LABEL: naming.DEV_PURPOSE},
        run_label=naming.RUN_LABEL, run_id=_variable(naming.RUN_VARIABLE, "compose"))
    return RenderedFile(path, text)
