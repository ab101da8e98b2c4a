"""Dependencies as projects declare them: requirements files (hashed or not), PEP 621
pyproject.toml alone, with uv.lock (exported by uv itself) or with poetry.lock (read here); stale
or unusable locks are refused when the spec loads, naming the file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from builder.build.dependencies import derived_requirements
from builder.core.errors import SpecError
from builder.project import Project
from builder.render.dockerfiles import rendered_files
from builder.spec.dependencies import hashed_requirements, poetry_requirements, read_pyproject
from builder.spec.service import ServiceSpec, load_spec
from tests.support.samples import FLAVORS

ROOT = Path(__file__).resolve().parents[2]
DJANGO = ROOT / "images" / "backend-django"
POETRY_APP = ROOT / "tests" / "fixtures" / "poetry-app"
SPEC = """\
name: svc
port: 8080
health: /health
{deps}
sources: [app.py]
dev: {{command: [python, app.py]}}
prod: {{command: [python, app.py], flavors: [distroless]}}
"""


def service(tmp_path: Path, deps: str, files: dict[str, str | Path]) -> Path:
    folder = tmp_path / "images" / "svc"
    folder.mkdir(parents=True)
    (folder / "app.py").write_text("app = None\n")
    for name, content in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(content)
    (folder / "image.yaml").write_text(SPEC.format(deps=deps))
    return folder


def load(folder: Path) -> ServiceSpec:
    return load_spec(folder, FLAVORS, folder.parents[1])


def requirement_lines(text: str) -> dict[str, str]:
    """`name==version` lines of a requirements text, by name."""
    pins = {}
    for line in text.splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, rest = line.partition("==")
            pins[name] = rest.split()[0]
    return pins


# ---- requirements files --------------------------------------------------------------------------

def test_a_plain_requirements_file_is_copied_as_it_is(tmp_path: Path) -> None:
    spec = load(service(tmp_path, "requirements: requirements.txt", {"requirements.txt": "flask\n"}))
    assert spec.dependencies.is_requirements and not spec.dependencies.locked
    assert derived_requirements(spec) is None


def test_a_requirements_file_with_hashes_is_installed_hash_checked(tmp_path: Path) -> None:
    text = ("flask==3.1.3 \\\n"
            "    --hash=sha256:f4bcbefc124291925f1a26446da31a5178f9483862233b23c0c96a20701f670c\n")
    assert hashed_requirements(text)
    assert not hashed_requirements("flask==3.1.3  # --hash is only mentioned in a comment\n")
    spec = load(service(tmp_path, "requirements: requirements.txt", {"requirements.txt": text}))
    assert spec.dependencies.locked and spec.dependencies.form == "requirements.txt (with hashes)"


# ---- pyproject.toml without a lock -----------------------------------------------------------------

def test_an_unlocked_pyproject_installs_its_pep621_dependencies_as_written(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "svc"\nversion = "1"\ndependencies = ["flask>=3", "gunicorn"]\n'
    spec = load(service(tmp_path, "pyproject: pyproject.toml", {"pyproject.toml": pyproject}))
    assert spec.dependencies.derived and not spec.dependencies.locked
    derived = derived_requirements(spec)
    assert derived is not None
    assert derived.splitlines()[1:] == ["flask>=3", "gunicorn"]


@pytest.mark.parametrize(("deps", "files", "expected"), [
    ("requirements: requirements.txt\npyproject: pyproject.toml",
     {"requirements.txt": "flask\n", "pyproject.toml": "[project]\n"},
     "image.yaml:5: pyproject: give either 'requirements' or 'pyproject', not both"),
    ("", {}, "missing required key 'requirements' (a pip requirements file) or 'pyproject'"),
    ("requirements: requirements.txt\nlock: uv.lock", {"requirements.txt": "x\n", "uv.lock": ""},
     "lock: a lock file goes with 'pyproject'"),
    ("pyproject: pyproject.toml\nlock: deps.lock",
     {"pyproject.toml": "[project]\ndependencies = []\n", "deps.lock": ""},
     "lock: 'deps.lock' is not one of uv.lock, poetry.lock"),
    ("pyproject: pyproject.toml", {"pyproject.toml": "[project]\ndependencies = [\n  'flask',\n  = 3\n]\n"},
     "pyproject.toml:4: invalid TOML: Invalid value"),
    ("pyproject: pyproject.toml", {"pyproject.toml": '[project]\ndynamic = ["dependencies"]\n'},
     "project.dynamic: dependencies are dynamic (computed by the build backend)"),
    ("pyproject: pyproject.toml", {"pyproject.toml": '[project]\ndependencies = ["flask >=> 3"]\n'},
     "project.dependencies[0]: 'flask >=> 3' is not a valid requirement"),
    ("pyproject: pyproject.toml", {"pyproject.toml": '[tool.black]\nline-length = 100\n'},
     "has no [project] table (PEP 621)"),
    ("pyproject: setup.cfg", {"setup.cfg": ""}, "'setup.cfg' must be a file named pyproject.toml"),
], ids=["both", "neither", "lock-without-pyproject", "unknown-lock", "bad-toml-line", "dynamic",
        "bad-requirement", "no-project-table", "not-pyproject"])
def test_bad_dependency_declarations_are_one_line(tmp_path: Path, deps: str, files: dict[str, str],
                                                  expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load(service(tmp_path, deps, files))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


# ---- uv.lock ------------------------------------------------------------------------------------------

def test_uv_lock_is_exported_with_hashes_without_dev_group_or_project(project: Project) -> None:
    spec = project.service("backend-django")
    derived = derived_requirements(spec)
    assert derived is not None
    pins = requirement_lines(derived)
    assert pins["django"].startswith("5.2.") and "gunicorn" in pins and "whitenoise" in pins
    assert "pytest" not in pins and "pytest-django" not in pins  # the dev dependency group
    # The project itself is the app's source, copied as such: not installed as a package.
    assert not [line for line in derived.splitlines() if line.startswith(("backend-django", "-e"))]
    # Every pinned package carries at least one hash, so pip checks each download.
    blocks = [block for block in re.split(r"\n(?=\S)", derived) if "==" in block]
    assert len(blocks) == len(pins) and all("--hash=sha256:" in block for block in blocks)


def test_a_uv_lock_made_from_another_pyproject_is_refused(tmp_path: Path) -> None:
    pyproject = (DJANGO / "pyproject.toml").read_text().replace('"gunicorn>=23"', '"gunicorn>=24"')
    folder = service(tmp_path, "pyproject: pyproject.toml\nlock: uv.lock",
                     {"pyproject.toml": pyproject, "uv.lock": DJANGO / "uv.lock"})
    with pytest.raises(SpecError, match=r"images/svc/uv.lock: out of date with images/svc/"
                                        r"pyproject.toml \(gunicorn differ\): run `uv lock`"):
        load(folder)


def test_uv_lock_locked_render_checks_hashes_then_constrains_otel(project: Project) -> None:
    files = {f.path.name: f.text for f in rendered_files(project.renderer,
                                                         project.service("backend-django"),
                                                         project.build_dir)}
    venv_stage = files["Dockerfile.prod-distroless"].split("FROM venv AS app")[0]
    assert "COPY .imagewright/build/requirements.txt /tmp/imagewright/requirements.txt" in venv_stage
    assert "--require-hashes \\\n      -r /tmp/imagewright/requirements.txt" in venv_stage
    assert venv_stage.count("-c /tmp/imagewright/locked.txt") == 2
    flask = {f.path.name: f.text for f in rendered_files(project.renderer,
                                                        project.service("backend-flask"),
                                                        project.build_dir)}
    assert "--require-hashes" not in flask["Dockerfile.prod-distroless"]
    assert ("COPY images/backend-flask/requirements.txt /tmp/imagewright/requirements.txt"
            in flask["Dockerfile.prod-distroless"])


# ---- poetry.lock ----------------------------------------------------------------------------------

def test_poetry_lock_gives_the_main_group_pinned_with_every_hash() -> None:
    project = read_pyproject(POETRY_APP / "pyproject.toml", "pyproject.toml")
    lines = poetry_requirements(POETRY_APP / "poetry.lock", "poetry.lock", project)
    pins = requirement_lines("\n".join(lines))
    assert {"flask", "gunicorn", "werkzeug", "jinja2", "click"} <= set(pins)
    assert not {"pytest", "pluggy", "iniconfig"} & set(pins)  # the dev group
    flask = next(line for line in lines if line.startswith("flask=="))
    assert flask.count("--hash=sha256:") == 2  # sdist and wheel: pip checks whichever it fetches


def test_poetry_lock_from_another_pyproject_is_refused(tmp_path: Path) -> None:
    pyproject = (POETRY_APP / "pyproject.toml").read_text().replace('"gunicorn>=23"', '"gunicorn>=22"')
    folder = service(tmp_path, "pyproject: pyproject.toml\nlock: poetry.lock",
                     {"pyproject.toml": pyproject, "poetry.lock": POETRY_APP / "poetry.lock"})
    with pytest.raises(SpecError, match=r"poetry.lock: metadata.content-hash: out of date with "
                                        r"images/svc/pyproject.toml: run `poetry lock`"):
        load(folder)


def test_a_current_poetry_project_loads_and_derives_its_lock(tmp_path: Path) -> None:
    folder = service(tmp_path, "pyproject: pyproject.toml\nlock: poetry.lock",
                     {"pyproject.toml": POETRY_APP / "pyproject.toml",
                      "poetry.lock": POETRY_APP / "poetry.lock"})
    spec = load(folder)
    assert spec.dependencies.locked and spec.dependencies.lock_kind == "poetry.lock"
    derived = derived_requirements(spec)
    assert derived is not None and "flask==" in derived and "pytest" not in derived


@pytest.mark.parametrize(("edit", "expected"), [
    (('lock-version = "2.1"', 'lock-version = "2.0"'),
     "metadata.lock-version: 2.0 (Poetry 1) does not record which packages the main group needs"),
    (('[package.source]\ntype = "legacy"', '[package.source]\ntype = "git"'),
     "comes from a git source, which has no hash to check"),
    (("[metadata]", "[meta]"), "not a Poetry lock file"),
], ids=["poetry-1-lock", "git-source", "not-a-lock"])
def test_poetry_locks_that_cannot_be_honoured_are_refused(tmp_path: Path, edit: tuple[str, str],
                                                         expected: str) -> None:
    text = (POETRY_APP / "poetry.lock").read_text()
    assert edit[0] in text
    lock = tmp_path / "poetry.lock"
    lock.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(SpecError) as caught:
        poetry_requirements(lock, "poetry.lock")
    assert expected in str(caught.value)
