"""The verify sequence for one service variant: the image must exist; its telemetry is proved
(spans.verify_image); it keeps its flavor's promises; then its start-up is profiled with and
without OpenTelemetry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from builder import naming
from builder.core.errors import FaultError
from builder.engine.client import Engine
from builder.inspect.checks import CheckResult
from builder.inspect.promises import check_promises
from builder.project import Project
from builder.spec.layout import ImagePaths
from builder.spec.service import ServiceSpec
from builder.verify.startup import (
    ImportCost,
    StartupStats,
    import_costs,
    measure_startup,
    protobuf_backend,
)


@dataclass(frozen=True)
class StartupProfile:
    otel: StartupStats
    plain: StartupStats
    imports: list[ImportCost]
    protobuf: str


def image_to_verify(engine: Engine, service: ServiceSpec, variant: str) -> str:
    """`<service>:<variant>`, which must have been built on this machine."""
    image = naming.image_ref(service.name, variant)
    if engine.image(image) is None:
        raise FaultError(f"image {image} does not exist: run `make build-{variant}` first")
    return image


def promises_kept(engine: Engine, project: Project, service: ServiceSpec, variant: str,
                  image: str) -> tuple[CheckResult, ...]:
    """The image against its target's promises (the flavor its label names, for prod)."""
    built = engine.image(image)
    flavor = (built.labels.get(naming.FLAVOR_LABEL) or None) if built and variant == "prod" else None
    if variant == "prod" and flavor not in project.catalog.flavors:
        return ()
    target = project.catalog.target(service, variant, flavor)
    return check_promises(engine, image, target.promises, project.layout.image)


def startup_profile(engine: Engine, service: ServiceSpec, variant: str, image: str,
                    paths: ImagePaths, runs: int, on_run: Callable[[int], None]
                    ) -> StartupProfile:
    """`runs` starts with OpenTelemetry and `runs` without, then where import time goes."""
    otel = measure_startup(engine, service, variant, image, runs, True, on_run)
    plain = measure_startup(engine, service, variant, image, runs, False, on_run)
    return StartupProfile(otel, plain, import_costs(engine, image, paths),
                          protobuf_backend(engine, image, paths))
