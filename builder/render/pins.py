"""`build/bases.lock.yaml`: the base images the renders are pinned to (`render --pin`).

A registry digest where the base has one; otherwise the local image id, which pins this machine's
bootstrapped base. The renderer reads the pins; build/bases.py finds them on the engine.
"""

from __future__ import annotations

from pathlib import Path

from builder.core.errors import SpecError
from builder.core.yamlfile import load_yaml
from builder.naming import PINS_FILE
from builder.spec import reference


def pins_path(build_dir: Path) -> Path:
    return build_dir / PINS_FILE


def load_pins(build_dir: Path) -> dict[str, str]:
    """Base reference → pinned reference, as `render --pin` wrote them (none when absent)."""
    path = pins_path(build_dir)
    if not path.is_file():
        return {}
    doc = load_yaml(path, f"build/{PINS_FILE}")
    if not isinstance(doc.data, dict):
        raise SpecError(doc.file, "", "expected a mapping of base → pinned reference")
    for ref, pinned in doc.data.items():
        if not reference.IMAGE_REFERENCE.fullmatch(ref):
            raise doc.error((ref,), "is not an image reference")
        if not isinstance(pinned, str) or not reference.PINNED_REFERENCE.fullmatch(pinned):
            raise doc.error((ref,), f"{pinned!r} is not a digest reference (name@sha256:<64 hex>, "
                                    "or a local image id sha256:<64 hex>); run `render --pin` again")
    return dict(doc.data)


def pins_text(pins: dict[str, str]) -> str:
    lines = ["# Written by `imagewright render --pin`: the bases these renders were pinned to.",
             "# A registry digest where the base has one; otherwise the local image id, which",
             "# pins this machine's bootstrapped base (another machine must re-pin)."]
    lines += [f'"{ref}": "{pinned}"' for ref, pinned in sorted(pins.items())]
    return "\n".join(lines) + "\n"
