"""A built image measured against what its variant or flavor promises in the catalog: the same
registered checks (builder/inspect/checks.py) whoever asks — verify, compare, the scan gate."""

from __future__ import annotations

from builder.engine.client import Engine
from builder.inspect import checks
from builder.inspect.checks import CheckResult
from builder.inspect.surface import attack_surface
from builder.spec.catalog import Promises
from builder.spec.layout import ImagePaths


def check_promises(engine: Engine, image: str, promises: Promises, paths: ImagePaths
                   ) -> tuple[CheckResult, ...]:
    surface = attack_surface(engine, image, paths)
    config = engine.inspect_image(image)["Config"] or {}
    return tuple(checks.evaluate(promises, surface, config))
