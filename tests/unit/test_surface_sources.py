"""Which part of Python a shipped .py file is, read off an image's paths (compare's *Python
sources* row): imagewright's venv, any site-packages or dist-packages, the stdlib, or neither."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from builder.inspect.surface import _sources_kind

VENV_LIB = "opt/venv/lib/"


@pytest.mark.parametrize(("path", "kind"), [
    ("opt/venv/lib/python3.12/site-packages/flask/app.py", ("packages",)),
    # A tutorial image: pip into the system Python, and apt's Python packages.
    ("usr/local/lib/python3.12/dist-packages/flask/app.py", ("packages",)),
    ("usr/lib/python3/dist-packages/apt/package.py", ("packages",)),
    ("usr/local/lib/python3.12/site-packages/requests/api.py", ("packages",)),
    ("usr/lib/python3.12/json/decoder.py", ("stdlib",)),
    ("usr/local/lib/python3.12/os.py", ("stdlib",)),
    ("app/app.py", ()),
    ("opt/imagewright/entry.py", ()),
    ("usr/lib/python3.12", ()),
])
def test_a_py_file_is_counted_where_it_belongs(path: str, kind: tuple[str, ...]) -> None:
    assert _sources_kind(PurePosixPath(path), VENV_LIB) == kind
