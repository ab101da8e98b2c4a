"""hadolint on the committed, rendered Dockerfiles (no engine: hadolint reads the files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.naming import DOCKERIGNORE, NAIVE, dockerfile_name
from builder.scan.hadolint import lint, unjustified_ignores

ROOT = Path(__file__).resolve().parents[2]

SHIPPED = sorted(path for path in (ROOT / "build").glob("*/Dockerfile.*")
                 if path.name != dockerfile_name(NAIVE) and path.suffix != DOCKERIGNORE)


@pytest.mark.parametrize("dockerfile", SHIPPED, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_rendered_dockerfile_is_hadolint_clean(dockerfile: Path) -> None:
    """Alpine's included: it can't be built here, so lint is its only check on this machine."""
    text = dockerfile.read_text()
    assert lint(dockerfile, dockerfile.name, ROOT) == ()
    # Every inline exception says why on the comment line above it.
    assert "# hadolint ignore=" in text and unjustified_ignores(text) == ()


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "build").glob(f"*/{dockerfile_name(NAIVE)}")),
                         ids=lambda path: path.parent.name)
def test_hadolint_sees_the_naive_baseline_as_naive(dockerfile: Path) -> None:
    """The tutorial-style baseline is rendered and linted like the rest; it is naive on purpose."""
    rules = {finding.code for finding in lint(dockerfile, dockerfile.name, ROOT)}
    assert {"DL3008", "DL3015", "DL3042"} <= rules
