"""Property: a hostile value in any spec field is refused with the one-line error, or renders
Dockerfiles that Docker's own parser reads as the same instructions as a benign value does.

The parser is BuildKit's (Go), through the PyPI package `dockerfile`: what Docker will execute,
not what a regex of ours believes. Generated strings mix every Unicode line break, zero-width and
bidi characters, Dockerfile and shell metacharacters, and arbitrary text.
"""

from __future__ import annotations

import copy
import shlex
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from builder.core.errors import SpecError
from builder.project import Project
from builder.render.dockerfiles import Renderer, rendered_files
from builder.spec.service import ServiceSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]
# Everything `str.splitlines()` splits on, and CR LF.
LINE_BREAKS = ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
INVISIBLE = ["\u200b", "\u200d", "\ufeff", "\u202e", "\u2066", "\u00ad", "\x00", "\x1b", "\t"]
METACHARACTERS = ["$", "$$", "${X}", "$(id)", '"', "'", "\\", "`", ";", "&", "&&", "|", "<", ">",
                  ">=", "*", "?", "[", "]", "{", "}", "#", "=", ",", " ", "(", ")", "~", "!", "%",
                  "\\\n", "[/docs]", "é", "🚀", "--from=x", "..", "/"]
BENIGN: dict[str, Any] = {
    "name": "svc",
    "description": "A service",
    "version": "1.0.0",
    "source_url": "https://example.com/svc",
    "port": 8080,
    "health": "/health",
    "requirements": "requirements.txt",
    "sources": ["app.py", "pkg"],
    "env": {"MODE": "benign"},
    "build_args": {"FLAG": "benign"},
    "dev": {"command": ["python", "app.py"], "base": "ubuntu:24.04", "apt_packages": ["curl"],
            "pip_packages": ["rich"]},
    "prod": {"command": ["python", "app.py"], "flavors": ["distroless", "alpine"]},
    "smoke": [{"path": "/x", "method": "GET", "status": 200, "route": "/x", "spans": ["a"]}],
    "otel": {"endpoint": "https://collector.example:4318", "resource_attributes": {"team": "t"},
             "sampler": "parentbased_traceidratio", "sampler_ratio": 0.5},
    "policy": {"prod": {"fail_on_severity": ["HIGH"]}},
}
# Every string the spec holds, by its key path; ("env", None) stands for a variable's name.
FIELDS: list[tuple[Any, ...]] = [
    ("name",), ("description",), ("version",), ("source_url",), ("health",), ("requirements",),
    ("sources", 0), ("sources", 1), ("env", "MODE"), ("env", None), ("build_args", "FLAG"),
    ("build_args", None), ("dev", "command", 0), ("dev", "command", 1), ("dev", "base"),
    ("dev", "apt_packages", 0), ("dev", "pip_packages", 0), ("prod", "command", 1),
    ("prod", "flavors", 0), ("smoke", 0, "path"), ("smoke", 0, "method"), ("smoke", 0, "route"),
    ("smoke", 0, "spans", 0), ("otel", "endpoint"), ("otel", "resource_attributes", "team"),
    ("otel", "resource_attributes", None), ("otel", "sampler"),
    ("policy", "prod", "fail_on_severity", 0),
]
PATH_FIELDS = {("requirements",), ("sources", 0), ("sources", 1)}


def benign_value(field: tuple[Any, ...]) -> str:
    node: Any = BENIGN
    for part in field:
        node = next(iter(node)) if part is None else node[part]
    return str(node)


def with_value(field: tuple[Any, ...], value: str) -> dict[str, Any]:
    data = copy.deepcopy(BENIGN)
    node: Any = data
    for part in field[:-1]:
        node = node[part]
    if field[-1] is None:  # a mapping key: rename the only entry
        (old,) = node
        node[value] = node.pop(old)
    else:
        node[field[-1]] = value
    return data


@contextmanager
def service_folder(data: dict[str, Any], field: tuple[Any, ...], value: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "svc"
        (folder / "pkg").mkdir(parents=True)
        (folder / "app.py").write_text("app = None\n")
        (folder / "requirements.txt").write_text("flask\n")
        if field in PATH_FIELDS:
            _create(folder, value)  # a path that doesn't exist says nothing about escaping
        # ASCII-only YAML: other characters as escapes, so none is folded on the way.
        (folder / "image.yaml").write_text(yaml.safe_dump(data),
                                           encoding="utf-8")
        yield folder


def _create(folder: Path, relative: str) -> None:
    try:
        target = folder / relative
        if folder.resolve() not in target.resolve().parents or target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
    except (OSError, ValueError):  # a name the filesystem refuses: the spec can't point at it
        pass


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    project = Project(ROOT)
    return Renderer(project.templates_dir, project.catalog, project.layout, {})


FLAVORS = ("alpine", "distroless")


def load(folder: Path) -> ServiceSpec | None:
    try:
        return load_spec(folder, FLAVORS)
    except SpecError as error:
        message = str(error)
        assert len(message.splitlines()) == 1 and message.isprintable(), repr(message)
        assert message.startswith(str(folder / "image.yaml"))
        return None


Shape = list[tuple[str, tuple[str, ...], bool, int]]


def shapes(renderer: Renderer, spec: ServiceSpec, build_dir: Path) -> dict[str, Shape]:
    """Each rendered Dockerfile as Docker's parser reads it: instruction, flags, exec form, arity."""
    out: dict[str, Shape] = {}
    for rendered in rendered_files(renderer, spec, build_dir):
        if rendered.path.name.startswith("Dockerfile"):
            commands = dockerfile.parse_string(rendered.text)
            out[rendered.path.name] = [(c.cmd, c.flags, c.json, len(c.value)) for c in commands]
    return out


@pytest.fixture(scope="module")
def benign_shapes(renderer: Renderer) -> dict[str, Shape]:
    with service_folder(BENIGN, ("name",), "svc") as folder:
        spec = load(folder)
        assert spec is not None, "the benign spec must load"
        return shapes(renderer, spec, folder.parent)


def check(renderer: Renderer, benign_shapes: dict[str, Shape], field: tuple[Any, ...],
          value: str) -> ServiceSpec | None:
    data = with_value(field, value)
    assert yaml.safe_load(yaml.safe_dump(data)) == data, "YAML can't hold it"
    with service_folder(data, field, value) as folder:
        spec = load(folder)
        if spec is None:
            return None
        assert shapes(renderer, spec, folder.parent) == benign_shapes, (field, value)
        dev = next(f.text for f in rendered_files(renderer, spec, folder.parent)
                   if f.path.name == "Dockerfile.dev")
    commands = dockerfile.parse_string(dev)
    # What Docker's parser decodes must be the spec's own values, not a neighbour's.
    cmd = next(c for c in reversed(commands) if c.cmd == "CMD")
    assert list(cmd.value) == list(spec.dev.command)
    copies = [c.value for c in commands if c.cmd == "COPY" and c.flags and "chown" in c.flags[0]]
    assert copies == [(source, f"/app/{source}") for source in spec.sources]
    # A pip requirement is one shell word of its RUN, as /bin/sh will split it.
    tools = next(c.value[0] for c in commands
                 if c.cmd == "RUN" and " -c /opt/venv/requirements.lock " in c.value[0])
    assert set(spec.dev.pip_packages) <= set(shlex.split(tools))
    return spec


hostile_text = st.lists(
    st.sampled_from(LINE_BREAKS + INVISIBLE + METACHARACTERS) | st.text(
        st.characters(exclude_categories=("Cs",)), max_size=3) | st.sampled_from(
        ["app.py", "pkg", "rich", "curl", "/x", "a", "HIGH", "GET", "https://x.io", "ubuntu"]),
    min_size=1, max_size=6).map("".join)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(field=st.sampled_from(FIELDS), value=hostile_text)
@example(field=("description",), value='x" \\\nRUN evil "')
@example(field=("env", "MODE"), value='a" B="c')
@example(field=("dev", "pip_packages", 0), value="rich>=13")
@example(field=("sources", 0), value="app.py /etc/shadow")
@example(field=("otel", "resource_attributes", "team"), value="a,b=c $x")
def test_hostile_values_are_refused_or_render_the_same_instructions(
        renderer: Renderer, benign_shapes: dict[str, Shape], field: tuple[Any, ...], value: str
) -> None:
    assume(yaml.safe_load(yaml.safe_dump(with_value(field, value)))
           == with_value(field, value))  # what YAML can't hold, no image.yaml can say
    outcome = "rendered" if check(renderer, benign_shapes, field, value) else "refused"
    event(f"{outcome}: {'.'.join(str(part) for part in field)}")


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: ".".join(str(p) for p in f))
def test_every_line_break_in_every_field_is_refused(renderer: Renderer,
                                                    benign_shapes: dict[str, Shape],
                                                    field: tuple[Any, ...]) -> None:
    for character in LINE_BREAKS + INVISIBLE:
        value = benign_value(field) + character + "RUN echo injected"
        assert check(renderer, benign_shapes, field, value) is None, (field, character)


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: ".".join(str(p) for p in f))
def test_the_benign_value_of_every_field_renders(renderer: Renderer,
                                                 benign_shapes: dict[str, Shape],
                                                 field: tuple[Any, ...]) -> None:
    """The property above is only as good as its baseline: each field's own value must pass."""
    assert check(renderer, benign_shapes, field, benign_value(field)) is not None
