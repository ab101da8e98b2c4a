"""`build/bases.lock.yaml`: the base images the renders are pinned to (`render --pin`).

A registry digest where the base has one; otherwise the local image id, which pins this machine's
bootstrapped base. The renderer reads the pins; build/bases.py finds them on the engine.
"""

from __future__ import annotations

from pathlib import Path

from builder.core.errors import SpecError
from builder.core.yamlfile import load_yaml
from builder.naming import PINS_FILE


def pins_path(build_dir: Path) -> Path:
    return build_dir / PINS_FILE


def load_pins(build_dir: Path) -> dict[str, str]:
    """Base reference → pinned reference, as `render --pin` wrote them (none when absent)."""
    path = pins_path(build_dir)
    if not path.is_file():
        return {}
    data = load_yaml(path, f"build/{PINS_FILE}").data
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise SpecError(f"build/{PINS_FILE}", "", "expected a mapping of base → pinned reference")
    return dict(data)


def pins_text(pins: dict[str, str]) -> str:
    lines = ["# Written by `imagewright render --pin`: the bases these renders were pinned to.",
             "# A registry digest where the base has one; otherwise the local image id, which",
             "# pins this machine's bootstrapped base (another machine must re-pin)."]
    lines += [f'"{ref}": "{pinned}"' for ref, pinned in sorted(pins.items())]
    return "\n".join(lines) + "\n"
