"""The verify sequence for one service variant: the image must exist; its telemetry is proved
(spans.verify_image); then its start-up is profiled with and without OpenTelemetry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from builder import naming
from builder.core.errors import FaultError
from builder.engine.client import Engine
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


def startup_profile(engine: Engine, service: ServiceSpec, variant: str, image: str,
                    paths: ImagePaths, runs: int, on_run: Callable[[int], None]
                    ) -> StartupProfile:
    """`runs` starts with OpenTelemetry and `runs` without, then where import time goes."""
    otel = measure_startup(engine, service, variant, image, runs, True, on_run)
    plain = measure_startup(engine, service, variant, image, runs, False, on_run)
    return StartupProfile(otel, plain, import_costs(engine, image, paths),
                          protobuf_backend(engine, image, paths))
