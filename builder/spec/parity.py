"""The dev/prod parity rule: both variants of a service run the same Python minor version, so
what passes in dev behaves the same in prod. The catalog is checked against it at load (bases
declare their Python), and built images are checked against it after a build and in compare."""

from __future__ import annotations


def python_minor(version: str) -> str:
    """`3.12.3` → `3.12`."""
    return ".".join(version.split(".")[:2])


def same_python(dev: str, prod: str) -> bool:
    return bool(dev) and bool(prod) and python_minor(dev) == python_minor(prod)
