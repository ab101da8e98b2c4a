"""Bad input: one line naming the file and the key, exit code 2, no traceback, nothing written.

Each case runs the real CLI (`render`) against a throwaway copy of the project holding one broken
service next to the good ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
name: svc
port: 8080
health: /health
requirements: requirements.txt
sources: [app.py, pkg]
dev:
  command: [python, app.py]
prod:
  command: [python, app.py]
  flavors: [distroless]
smoke:
  - {path: /x, status: 200}
"""
Setup = Callable[[Path], None]


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


def symlink_out(folder: Path) -> None:
    (folder / "pkg" / "escape").symlink_to("/etc")


def not_utf8(folder: Path) -> None:
    (folder / "image.yaml").write_bytes(b"name: svc\ndescription: caf\xe9\n")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n" + GOOD

# (case id, image.yaml text, extra setup, what the one line must contain)
CASES: list[tuple[str, str, Setup | None, str]] = [
    ("unknown-key", edit("health:", "helth:"), None, "helth: unknown key (did you mean 'health'?)"),
    ("unknown-nested-key", edit("  flavors:", "  flavours:"), None,
     "prod.flavours: unknown key (did you mean 'flavors'?)"),
    ("unknown-variant", GOOD + "staging:\n  command: [x]\n", None, "staging: unknown key"),
    ("port-as-string", edit("port: 8080", 'port: "8080"'), None, "port: expected an integer, got a string"),
    ("port-as-bool", edit("port: 8080", "port: true"), None, "port: expected an integer, got a boolean"),
    ("port-out-of-range", edit("port: 8080", "port: 70000"), None, "port: 70000 is out of range"),
    ("port-zero", edit("port: 8080", "port: 0"), None, "port: 0 is out of range 1..65535"),
    ("port-null", edit("port: 8080", "port: ~"), None, "port: expected an integer, got nothing"),
    ("missing-port", edit("port: 8080\n", ""), None, "missing required key 'port'"),
    ("missing-dev-command", edit("  command: [python, app.py]\nprod:", "  {}\nprod:"), None,
     "dev: missing required key 'command'"),
    ("empty-command", edit("  command: [python, app.py]\nprod:", "  command: []\nprod:"), None,
     "dev.command: must not be empty"),
    ("sources-not-a-list", edit("sources: [app.py, pkg]", "sources: app.py"), None,
     "sources: expected a list, got a string"),
    ("invalid-image-ref", edit("  command: [python, app.py]\nprod:",
                               "  command: [python, app.py]\n  base: 'Ubuntu:24.04!!'\nprod:"), None,
     "dev.base: 'Ubuntu:24.04!!' is not a valid image reference"),
    ("unknown-flavor", edit("[distroless]", "[distrolss]"), None,
     "prod.flavors[0]: unknown flavor 'distrolss' (did you mean 'distroless'?)"),
    ("duplicate-flavor", edit("[distroless]", "[distroless, distroless]"), None,
     "prod.flavors[1]: 'distroless' is listed twice"),
    ("path-escapes", edit("[app.py, pkg]", "[app.py, ../other]"), None,
     "sources[1]: '../other' must be a relative path inside the service folder"),
    ("absolute-path", edit("requirements: requirements.txt", "requirements: /etc/passwd"), None,
     "requirements: '/etc/passwd' must be a relative path inside the service folder"),
    ("symlink-outside", GOOD, symlink_out, "sources[1]: 'pkg' contains a symlink leading outside"),
    ("missing-source", edit("[app.py, pkg]", "[app.py, nope.py]"), None, "sources[1]: 'nope.py' does not exist"),
    ("requirements-is-dir", edit("requirements: requirements.txt", "requirements: pkg"), None,
     "requirements: 'pkg' is not a file"),
    ("name-not-folder", edit("name: svc", "name: other"), None, "name: 'other' must match its folder name"),
    ("bad-name", edit("name: svc", "name: Bad Name"), None, "name: 'Bad Name' is not a valid service name"),
    ("not-utf8", GOOD, not_utf8, "not UTF-8 text"),
    ("empty-file", "", None, "file is empty"),
    ("comments-only", "# nothing here\n", None, "file is empty"),
    ("yaml-list", "- name: svc\n", None, "expected a mapping, got a list"),
    ("yaml-scalar", "just text\n", None, "expected a mapping, got a string"),
    ("alias-bomb", BOMB, None, "YAML aliases are not allowed"),
    ("duplicate-key", GOOD + "port: 9090\n", None, "port: duplicate key"),
    ("control-character", "name: svc\x1b\n", None, "invalid YAML: character '\\x1b' is not allowed"),
    ("unknown-yaml-tag", "=\n", None, "invalid value: could not determine a constructor for the tag"),
    ("invalid-yaml", edit("sources: [app.py, pkg]", "sources: [app.py, pkg"), None, "invalid YAML"),
    ("secret-in-env", GOOD + "env:\n  API_TOKEN: abc\n", None,
     "env.API_TOKEN: looks like a secret; pass it at run time"),
    ("secret-build-arg", GOOD + "build_args:\n  PYPI_PASSWORD: hunter2\n", None,
     "build_args.PYPI_PASSWORD: looks like a secret; build arguments are kept in the image's history"),
    ("env-value-mapping", GOOD + "env:\n  LEVEL: {a: 1}\n", None, "env.LEVEL: expected a string, got a mapping"),
    ("health-not-a-path", edit("health: /health", "health: health"), None,
     "health: 'health' must be a URL path starting with '/'"),
    ("smoke-status-range", edit("status: 200}", "status: 700}"), None, "smoke[0].status: 700 is out of range"),
    ("smoke-method", edit("status: 200}", "status: 200, method: FETCH}"), None,
     "smoke[0].method: 'FETCH' is not one of"),
    ("apt-package-injection", edit("  command: [python, app.py]\nprod:",
                                   "  command: [python, app.py]\n  apt_packages: ['curl; rm -rf /']\nprod:"),
     None, "dev.apt_packages[0]: 'curl; rm -rf /' is not a valid Debian package name"),
    ("too-large", GOOD + "#" + "x" * (300 * 1024) + "\n", None, "file is larger than 256 KiB"),
    ("smoke-route-on-health-path", GOOD + "  - {path: /health, route: /health}\n", None,
     "smoke[1].route: '/health' is the health path (/health), which is excluded from tracing"),
    ("smoke-spans-on-health-path", GOOD + "  - {path: '/health?full=1', spans: [check]}\n", None,
     "smoke[1].spans: '/health?full=1' is the health path (/health), which is excluded from tracing"),
    ("otel-mode-unknown", GOOD + "otel: {mode: both}\n", None, "otel.mode: 'both' is not one of auto, app"),
    ("otel-unknown-key", GOOD + "otel: {mod: app}\n", None, "otel.mod: unknown key (did you mean 'mode'?)"),
    ("prod-pip-package-injection", edit("  flavors: [distroless]", "  flavors: [distroless]\n  pip_packages: ['gunicorn; curl x|sh']"),
     None, "prod.pip_packages[0]: 'gunicorn; curl x|sh' is not a valid pip requirement"),
]


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for folder in ("images", "templates", "build"):
        shutil.copytree(ROOT / folder, root / folder)
    return root


def snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in (root / "build").rglob("*")}


@pytest.mark.parametrize(("text", "setup", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_spec_is_one_line_exit_2_nothing_written(project_copy: Path, text: str,
                                                     setup: Setup | None, expected: str) -> None:
    folder = project_copy / "images" / "svc"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "pkg").mkdir(parents=True)
    (folder / "app.py").write_text("print('hi')\n")
    (folder / "requirements.txt").write_text("flask\n")
    (folder / "image.yaml").write_text(text)
    if setup:
        setup(folder)
    before = snapshot(project_copy)
    result = subprocess.run([sys.executable, "-m", "builder", "-C", str(project_copy), "render"],
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: images/svc/image.yaml"), lines[0]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert snapshot(project_copy) == before, "nothing may be written"


def test_there_are_at_least_25_distinct_cases() -> None:
    assert len({case[0] for case in CASES}) == len(CASES) >= 25
