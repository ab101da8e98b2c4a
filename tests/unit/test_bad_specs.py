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


def symlink_loop_source(folder: Path) -> None:
    (folder / "loop").symlink_to("loop")


def spec_symlink_loop(folder: Path) -> None:
    (folder / "image.yaml").unlink()
    (folder / "image.yaml").symlink_to("image.yaml")


def spec_is_a_fifo(folder: Path) -> None:
    (folder / "image.yaml").unlink()
    os.mkfifo(folder / "image.yaml")


def spec_is_huge(folder: Path) -> None:
    """1 GiB, sparse: refused from its size alone, before a byte is read."""
    os.truncate(folder / "image.yaml", 1 << 30)


def with_dev(line: str) -> str:
    return edit("  command: [python, app.py]\nprod:", f"  command: [python, app.py]\n  {line}\nprod:")


TOO_MANY_SOURCES = edit("sources: [app.py, pkg]", "sources: [" + ", ".join(f"f{i}.py" for i in range(65)) + "]")

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
    # 1. instruction injection: every string, centrally; strict paths
    ("line-separator", GOOD + 'description: "a\\u2028FROM evil"\n', None,
     "description: contains U+2028 (LINE SEPARATOR), a line separator: remove it"),
    ("paragraph-separator", GOOD + 'description: "a\\u2029b"\n', None, "description: contains U+2029"),
    ("next-line-in-command", edit("command: [python, app.py]\nprod", 'command: [python, "app.py\\x85RUN x"]\nprod'), None,
     "dev.command[1]: contains U+0085, a control character"),
    ("carriage-return-in-span", edit("status: 200}", 'status: 200, spans: ["a\\rb"]}'), None,
     "smoke[0].spans[0]: contains U+000D, a control character"),
    ("zero-width-space", GOOD + 'description: "zero\\u200bwidth"\n', None,
     "description: contains U+200B (ZERO WIDTH SPACE), an invisible formatting character"),
    ("bidi-override-in-env", GOOD + 'env:\n  MODE: "safe\\u202eelif"\n', None,
     "env.MODE: contains U+202E (RIGHT-TO-LEFT OVERRIDE), an invisible formatting character"),
    ("tab-in-version", GOOD + 'version: "1.0\\t2"\n', None, "version: contains U+0009, a control character"),
    ("newline-in-env-name", GOOD + 'env:\n  "FOO\\nRUN x": y\n', None, "is not a valid variable name"),
    ("glob-in-source", edit("[app.py, pkg]", "['app*.py', pkg]"), None,
     "sources[0]: 'app*.py' has '*': a path here takes letters, digits"),
    ("bracket-in-source", edit("[app.py, pkg]", "['a[pp].py', pkg]"), None, "sources[0]: 'a[pp].py' has '['"),
    ("dollar-in-source", edit("[app.py, pkg]", "['$HOME', pkg]"), None, "sources[0]: '$HOME' has '$'"),
    ("quote-in-requirements", edit("requirements: requirements.txt", "requirements: 'req\"s.txt'"), None,
     "requirements: 'req\"s.txt' has '\"'"),
    ("backslash-in-source", edit("[app.py, pkg]", "['pkg\\x', pkg]"), None, "sources[0]: 'pkg\\\\x' has '\\\\'"),
    ("space-in-source", edit("[app.py, pkg]", "['app.py /etc/passwd', pkg]"), None, "has ' '"),
    ("dash-name-in-source", edit("[app.py, pkg]", "['pkg/--from', pkg]"), None, "has a name starting with '-'"),
    ("dot-source", edit("[app.py, pkg]", "[.]"), None,
     "sources[0]: '.' would copy the whole service folder (image.yaml included); list the files and folders"),
    ("dot-slash-source", edit("[app.py, pkg]", "[./]"), None, "sources[0]: './' would copy the whole service folder"),
    # 2. values that go unquoted into the image are validated
    ("health-with-quote", edit("health: /health", "health: '/he\"alth'"), None,
     "health: '/he\"alth' has '\"': the health path is written into the image's environment"),
    ("health-with-dollar", edit("health: /health", "health: /health$PATH"), None, "health: '/health$PATH' has '$'"),
    ("health-with-backslash", edit("health: /health", "health: '/he\\alth'"), None, "has '\\\\'"),
    ("health-with-comma", edit("health: /health", "health: /a,b"), None, "has ','"),
    ("source-url-with-quote", GOOD + "source_url: 'https://x.io/\"a'\n", None, "is not a valid http(s) URL"),
    # 3. pip requirements as pip parses them
    ("pip-shell-injection", with_dev("pip_packages: ['rich; rm -rf /']"), None,
     "dev.pip_packages[0]: 'rich; rm -rf /' is not a valid pip requirement"),
    ("pip-option", with_dev("pip_packages: ['--index-url=http://evil.example']"), None, "is not a valid pip requirement"),
    ("pip-redirect", with_dev("pip_packages: ['rich > /etc/passwd']"), None, "is not a valid pip requirement"),
    ("pip-direct-url", with_dev("pip_packages: ['pkg @ https://example.com/pkg.whl']"), None,
     "dev.pip_packages[0]: 'pkg @ https://example.com/pkg.whl' is a direct URL reference"),
    # 5. secrets by value, whatever the name
    ("database-url-password", GOOD + "env:\n  DATABASE_URL: postgres://app:s3cret@db:5432/app\n", None,
     "env.DATABASE_URL: the value looks like a URL with a password; pass it at run time"),
    ("db-pass-high-entropy", GOOD + "env:\n  DB_PASS: wJalrXUtnFEMI7K7MDENGbPxRfiCYEXAMPLEKEY\n", None,
     "env.DB_PASS: the value looks like a long random-looking string"),
    ("stripe-live-key", GOOD + "env:\n  STRIPE_SK: sk_live_4eC39HqLyjWDarjtT1zdp7dc\n", None,
     "env.STRIPE_SK: the value looks like a credential (Stripe Access Key)"),
    ("stripe-test-key", GOOD + "env:\n  STRIPE_SK: sk_test_4eC39HqLyjWDarjtT1zdp7dc\n", None,
     "env.STRIPE_SK: the value looks like a Stripe key"),
    ("private-key-value", GOOD + 'env:\n  TLS: "-----BEGIN PRIVATE KEY----- MIIEvQ -----END PRIVATE KEY-----"\n', None,
     "env.TLS: the value looks like a private key"),
    ("github-token-build-arg", GOOD + "build_args:\n  GH: ghp_abcdefghijklmnopqrstuvwxyz0123456789\n", None,
     "build_args.GH: the value looks like a credential (GitHub Token); build arguments are kept in the image's history"),
    ("aws-key-build-arg", GOOD + "build_args:\n  AWS_ID: AKIAIOSFODNN7EXAMPLE\n", None, "looks like a credential (AWS Access Key)"),
    # 6. reserved names; telemetry choices through validated otel keys
    ("reserved-otel", GOOD + "env:\n  OTEL_EXPORTER_OTLP_ENDPOINT: http://x\n", None,
     "env.OTEL_EXPORTER_OTLP_ENDPOINT: is reserved: imagewright sets it"),
    ("reserved-imagewright", GOOD + "env:\n  IMAGEWRIGHT_HEALTH_URL: http://x\n", None, "is reserved"),
    ("reserved-honeycomb", GOOD + "env:\n  HONEYCOMB_DATASET: x\n", None, "env.HONEYCOMB_DATASET: is reserved"),
    ("reserved-path", GOOD + "env:\n  PATH: /tmp/evil\n", None, "env.PATH: is reserved"),
    ("reserved-path-lower", GOOD + "env:\n  Path: /tmp/evil\n", None, "env.Path: is reserved"),
    ("reserved-ld-preload", GOOD + "env:\n  LD_PRELOAD: /tmp/x.so\n", None, "env.LD_PRELOAD: is reserved"),
    ("reserved-pythonpath", GOOD + "env:\n  PYTHONPATH: /tmp\n", None, "env.PYTHONPATH: is reserved"),
    ("reserved-ssl", GOOD + "env:\n  SSL_CERT_FILE: /tmp/ca.pem\n", None, "env.SSL_CERT_FILE: is reserved"),
    ("reserved-requests-ca", GOOD + "env:\n  REQUESTS_CA_BUNDLE: /tmp/ca.pem\n", None, "is reserved"),
    ("reserved-pip-build-arg", GOOD + "build_args:\n  PIP_INDEX_URL: http://evil.example\n", None,
     "build_args.PIP_INDEX_URL: is reserved"),
    ("reserved-uv", GOOD + "build_args:\n  UV_INDEX_URL: http://evil.example\n", None, "build_args.UV_INDEX_URL: is reserved"),
    ("otel-endpoint-not-url", GOOD + "otel:\n  endpoint: collector:4318\n", None,
     "otel.endpoint: 'collector:4318' is not a valid http(s) URL"),
    ("otel-endpoint-credentials", GOOD + "otel:\n  endpoint: https://key:secret@api.honeycomb.io\n", None,
     "otel.endpoint: 'https://key:secret@api.honeycomb.io' carries credentials"),
    ("otel-endpoint-bad-port", GOOD + "otel:\n  endpoint: http://collector:99999\n", None, "is not a valid URL"),
    ("otel-own-attribute", GOOD + "otel:\n  resource_attributes: {service.name: other}\n", None,
     "otel.resource_attributes.'service.name': is set by imagewright"),
    ("otel-attribute-key", GOOD + "otel:\n  resource_attributes: {'a,b=c': x}\n", None, "is not a valid attribute name"),
    ("otel-unknown-sampler", GOOD + "otel:\n  sampler: sometimes\n", None, "otel.sampler: 'sometimes' is not one of always_on"),
    ("otel-ratio-missing", GOOD + "otel:\n  sampler: traceidratio\n", None, "otel: sampler 'traceidratio' needs a sampler_ratio"),
    ("otel-ratio-range", GOOD + "otel:\n  sampler: traceidratio\n  sampler_ratio: 2\n", None,
     "otel.sampler_ratio: expected a number from 0 to 1, got 2"),
    # 7. YAML typing: a string field given an unquoted number says to quote it
    ("version-as-number", GOOD + "version: 1.10\n", None, "version: expected a string, got a number: quote it ('1.10')"),
    ("command-item-as-number", edit("command: [python, app.py]\nprod", "command: [python, app.py, 0755]\nprod"), None,
     "dev.command[2]: expected a string, got an integer: quote it ('0755')"),
    ("env-null", GOOD + "env:\n  LEVEL: ~\n", None, "env.LEVEL: has no value; write one, or '' for an empty string"),
    # 8. names follow Docker's reference grammar, and say which rule
    ("name-upper-case", edit("name: svc", "name: Svc"), None, "name: 'Svc' is not a valid service name: it has upper-case letters"),
    ("name-double-dot", edit("name: svc", "name: s..vc"), None, "it has separators side by side"),
    ("name-trailing-dash", edit("name: svc", "name: svc-"), None, "must start and end with a lower-case letter or digit"),
    ("name-colon", edit("name: svc", "name: 'svc:latest'"), None, "it has ':'; a Docker repository name has only"),
    ("name-too-long", edit("name: svc", "name: " + "s" * 64), None, "is longer than 63 characters"),
    # 9. resource abuse
    ("deep-nesting", GOOD + "description: " + "[" * 200 + "]" * 200 + "\n", None, "nested deeper than 20 levels"),
    ("symlink-loop-source", edit("[app.py, pkg]", "[app.py, loop]"), symlink_loop_source, "sources[1]: 'loop' contains a symlink loop"),
    ("spec-symlink-loop", GOOD, spec_symlink_loop, "cannot read file (Too many levels of symbolic links)"),
    ("spec-is-a-fifo", GOOD, spec_is_a_fifo, "is not a regular file"),
    ("spec-is-huge", GOOD, spec_is_huge, "file is larger than 256 KiB"),
    ("too-many-sources", TOO_MANY_SOURCES, None,
     "sources: lists 65 entries, more than 64: each is a layer of the image"),
    # 10. text that looks like terminal markup is printed as text
    ("markup-in-message", GOOD + "version: '[/docs]'\n", None, "version: '[/docs]' is not a valid version"),
    ("markup-tag-in-message", GOOD + "version: '[bold red]x'\n", None, "version: '[bold red]x' is not a valid version"),
    ("smoke-route-on-health-path", GOOD + "  - {path: /health, route: /health}\n", None,
     "smoke[1].route: '/health' is the health path (/health), which is excluded from tracing"),
    ("smoke-spans-on-health-path", GOOD + "  - {path: '/health?full=1', spans: [check]}\n", None,
     "smoke[1].spans: '/health?full=1' is the health path (/health), which is excluded from tracing"),
    ("otel-mode-unknown", GOOD + "otel: {mode: both}\n", None, "otel.mode: 'both' is not one of auto, app"),
    ("otel-unknown-key", GOOD + "otel: {mod: app}\n", None, "otel.mod: unknown key (did you mean 'mode'?)"),
    ("prod-python-sources-unknown", edit("  flavors: [distroless]", "  flavors: [distroless]\n  python_sources: yes"),
     None, "prod.python_sources: expected a string, got a boolean"),
    ("prod-python-sources-value", edit("  flavors: [distroless]", "  flavors: [distroless]\n  python_sources: sources"),
     None, "prod.python_sources: 'sources' is not one of bytecode, keep"),
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
