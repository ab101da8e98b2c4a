"""Property: whatever YAML a user writes, the loader returns a ServiceSpec or raises SpecError."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.core.errors import SpecError
from builder.spec.service import ServiceSpec, load_spec
from tests.support.samples import FLAVORS

KEYS = ["name", "description", "version", "source_url", "port", "health", "requirements", "sources",
        "env", "build_args", "dev", "prod", "smoke", "command", "flavors", "base", "apt_packages",
        "pip_packages", "path", "status", "route", "spans", "method", "nonsense"]
VALID: dict[str, Any] = {
    "name": "svc", "port": 8080, "health": "/health", "requirements": "requirements.txt",
    "sources": ["app.py"], "dev": {"command": ["python", "app.py"]},
    "prod": {"command": ["python", "app.py"], "flavors": ["distroless"]},
    "smoke": [{"path": "/x", "status": 200, "route": "/x", "spans": ["a"]}],
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 70000), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["app.py", "../x", "/etc", "/x", "distroless",
                                                           "ubuntu:24.04", "svc", "requirements.txt"]))
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=4)), max_leaves=12)


def load_text(text: str | bytes) -> ServiceSpec | None:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "svc"
        folder.mkdir()
        (folder / "app.py").write_text("")
        (folder / "requirements.txt").write_text("")
        spec_file = folder / "image.yaml"
        if isinstance(text, bytes):
            spec_file.write_bytes(text)
        else:
            spec_file.write_text(text)
        try:
            return load_spec(folder, FLAVORS)
        except SpecError as error:
            assert "\n" not in str(error) and str(error).startswith(str(spec_file))
            return None


def test_the_valid_base_loads() -> None:
    assert isinstance(load_text(yaml.safe_dump(VALID)), ServiceSpec)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_generated_specs_load_or_raise_spec_error(data: dict[str, Any]) -> None:
    load_text(yaml.safe_dump(data, allow_unicode=True))


@settings(deadline=None)
@given(st.sampled_from(sorted(VALID)), values, st.booleans())
def test_mutations_of_a_valid_spec_load_or_raise_spec_error(key: str, value: Any, delete: bool) -> None:
    data = dict(VALID)
    if delete:
        del data[key]
    else:
        data[key] = value
    load_text(yaml.safe_dump(data, allow_unicode=True))


@settings(deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_load_or_raise_spec_error(raw: bytes | str) -> None:
    load_text(raw)


@settings(deadline=None)
@given(st.integers(0, len(yaml.safe_dump(VALID)) - 1), st.sampled_from(["", ":", "[", "{", "&a ", "*a",
                                                                         "\t", "- ", "\x00", "'"]))
def test_corrupted_valid_text_loads_or_raises_spec_error(position: int, insert: str) -> None:
    text = yaml.safe_dump(VALID)
    load_text(text[:position] + insert + text[position:])
