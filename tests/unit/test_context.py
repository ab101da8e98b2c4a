"""The build context: ignore rules at every depth, imagewright's own names, the secret scan and its
allow entries. Real files in a temp folder, the real rendered .dockerignore, the real Trivy."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from datetime import date, timedelta
from pathlib import Path

import pytest

from builder.build.context import build_context, context_paths, is_tool_path
from builder.build.secrets import ContextSecretsError, check_context, judge
from builder.core.errors import SpecError
from builder.project import Project
from builder.scan.trivy import Secret
from builder.spec.service import AllowedSecret, ServiceSpec, load_spec
from tests.support.planted import FOUND_BY_CONTENT, IGNORED_BY_NAME, plant

FLAVORS = ("alpine", "distroless")
ROOT = Path(__file__).resolve().parents[2]
SPEC = """\
name: svc
port: 8080
health: /health
requirements: requirements.txt
sources: [app.py, pkg]
dev: {command: [python, app.py]}
prod: {command: [python, app.py], flavors: [distroless]}
"""
TODAY = date(2025, 6, 1)
LEGIT = ("app.py", "requirements.txt", "pkg/__init__.py", "pkg/sub/views.py", "pkg/identity.py",
         "pkg/environment.py", "pkg/keys/README.txt", "pkg/templates/index.html")


def service_folder(tmp_path: Path, extra_spec: str = "") -> Path:
    folder = tmp_path / "images" / "svc"
    folder.mkdir(parents=True)
    for relative in LEGIT:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(f"# {relative}: nothing secret here\n")
    (folder / "image.yaml").write_text(SPEC + extra_spec)
    return folder


def load(folder: Path, today: date = TODAY) -> ServiceSpec:
    return load_spec(folder, FLAVORS, folder.parents[1], today=today)


@pytest.fixture(scope="module")
def dockerignore(project: Project) -> str:
    """The rendered .dockerignore every build sends with (the committed one, `render --check`ed)."""
    return (project.build_dir / "backend-flask" / ".dockerignore").read_text()


def tar_names(context: io.BytesIO) -> list[str]:
    with tarfile.open(fileobj=context, mode="r:") as tar:
        names = tar.getnames()
    context.seek(0)
    return names


# ---- ignore rules -------------------------------------------------------------------------------

def test_ignore_rules_keep_secret_names_out_at_every_depth(tmp_path: Path, dockerignore: str) -> None:
    folder = service_folder(tmp_path)
    plant(folder, IGNORED_BY_NAME)
    plant(folder / "pkg" / "sub", IGNORED_BY_NAME)  # the same names two levels further down
    paths = context_paths(folder, dockerignore)
    leaked = [path for path in paths for name in IGNORED_BY_NAME
              if path == name or path.endswith("/" + name) or path.startswith(name + "/")]
    assert leaked == []
    # Nothing under an ignored folder either (.git/, venv/, node_modules/, .aws/, …).
    ignored_dirs = (".git", "pkg/.git", "venv", "node_modules", "cfg/.aws", "cfg/.docker",
                    "cfg/.ssh", ".imagewright")
    assert not [p for p in paths for d in ignored_dirs if p == d or p.startswith(d + "/")]
    # Files that merely resemble a rule (identity.py, environment.py, keys/) are sent.
    assert set(LEGIT) <= set(paths)
    assert "image.yaml" not in paths


@pytest.mark.parametrize("relative", [
    "Dockerfile", ".dockerignore", ".imagewright", ".imagewright/runtime/entry.py",
    "pkg/.imagewright/x.py",
])
def test_tool_paths_are_reserved(relative: str) -> None:
    assert is_tool_path(relative)


@pytest.mark.parametrize("relative", ["pkg/Dockerfile.md", "imagewright/x.py", "pkg/dockerfile"])
def test_lookalikes_are_not_reserved(relative: str) -> None:
    assert not is_tool_path(relative)


@pytest.mark.parametrize("dockerignore_text", ["", "# no rules at all\n"], ids=["empty", "comment"])
def test_service_folder_cannot_shadow_imagewright_files_whatever_the_rules(
        tmp_path: Path, dockerignore_text: str) -> None:
    """Even with no ignore rules (the naive baseline's context), the tool's names stay its own:
    docker-py alone would send the folder's Dockerfile and .dockerignore next to the tool's."""
    folder = service_folder(tmp_path)
    plant(folder, {"Dockerfile": "FROM scratch\n", ".dockerignore": "*\n",
                   ".imagewright/runtime/entry.py": "print('not imagewright')\n",
                   ".imagewright/runtime/planted.py": "print('not imagewright')\n",
                   "pkg/.imagewright/x.py": "print('not imagewright')\n"})
    context = build_context(load(folder), dockerignore_text, "FROM imagewright\n",
                            {".imagewright/runtime/entry.py": b"imagewright's entry\n"})
    names = tar_names(context)
    assert names.count("Dockerfile") == 1 and names.count(".imagewright/runtime/entry.py") == 1
    assert not [n for n in names if n == ".dockerignore" or "planted" in n or n.startswith("pkg/.imagew")]
    with tarfile.open(fileobj=context, mode="r:") as tar:
        assert tar.extractfile("Dockerfile").read() == b"FROM imagewright\n"  # type: ignore[union-attr]
        assert tar.extractfile(".imagewright/runtime/entry.py").read() == (  # type: ignore[union-attr]
            b"imagewright's entry\n")


# ---- the scan decision -----------------------------------------------------------------------------

def secret(path: str, rule: str = "private-key", line: int = 1) -> Secret:
    return Secret(rule, "category", "HIGH", "title", path, line, "", "")


def allowed(path: str) -> AllowedSecret:
    return AllowedSecret(path, "a documented test fixture", date(2030, 1, 1), "image.yaml:9")


def test_judge_groups_by_file_and_holds_files_against_allow_entries() -> None:
    verdict = judge([secret("b.txt", line=3), secret("a.py", "aws-access-key-id"),
                     secret("b.txt", "github-pat", line=1), secret("c.txt")],
                    [allowed("c.txt"), allowed("gone.txt")])
    assert [(path, [(s.rule_id, s.line) for s in found]) for path, found in verdict.refused] == [
        ("a.py", [("aws-access-key-id", 1)]), ("b.txt", [("github-pat", 1), ("private-key", 3)])]
    assert [(entry.path, len(found)) for entry, found in verdict.allowed] == [("c.txt", 1)]
    assert [entry.path for entry in verdict.unused] == ["gone.txt"]
    notes = verdict.notes()
    assert "c.txt is sent although it holds private-key, allowed by image.yaml:9 until 2030-01-01" in notes[0]
    assert "allow entry for gone.txt matches no finding" in notes[1]


def test_judge_with_no_findings_refuses_nothing() -> None:
    assert judge([], []).refused == ()


def test_scan_refuses_with_one_line_per_file_found(tmp_path: Path, dockerignore: str) -> None:
    folder = service_folder(tmp_path)
    plant(folder, IGNORED_BY_NAME)
    plant(folder, {path: template for path, (template, _) in FOUND_BY_CONTENT.items()})
    service = load(folder)
    context = build_context(service, dockerignore, "FROM scratch\n", {})
    with pytest.raises(ContextSecretsError) as caught:
        check_context(service, context)
    error = caught.value
    assert error.exit_code == 2
    header, *lines = error.message.splitlines()
    assert header.startswith(f"build context of svc refused: secrets in {len(FOUND_BY_CONTENT)} files")
    assert "context.allow_secrets" in header
    assert sorted(line.split(":")[0].strip() for line in lines) == sorted(FOUND_BY_CONTENT)
    for path, (_, rule) in FOUND_BY_CONTENT.items():
        assert f"  {path}: {rule} (" in lines[sorted(FOUND_BY_CONTENT).index(path)]


def test_clean_context_passes_the_scan(tmp_path: Path, dockerignore: str) -> None:
    folder = service_folder(tmp_path)
    plant(folder, IGNORED_BY_NAME)  # all kept out by name: the scan never sees them
    service = load(folder)
    verdict = check_context(service, build_context(service, dockerignore, "FROM scratch\n", {}))
    assert (verdict.refused, verdict.allowed, verdict.unused) == ((), (), ())


def test_allow_entry_lets_exactly_its_file_through(tmp_path: Path, dockerignore: str) -> None:
    fixture = "pkg/tests/fixture_token.txt"
    folder = service_folder(tmp_path, extra_spec=(
        "context:\n  allow_secrets:\n"
        f"    - {{path: {fixture}, reason: revoked token kept as a parser fixture, expires: 2025-07-01}}\n"
        "    - {path: pkg/keys/deploy_key.txt, reason: throwaway test CA key, expires: 2025-07-01}\n"))
    plant(folder, {path: template for path, (template, _) in FOUND_BY_CONTENT.items()})
    service = load(folder)
    with pytest.raises(ContextSecretsError) as caught:  # the other files are still refused
        check_context(service, build_context(service, dockerignore, "FROM scratch\n", {}))
    refused = [line.split(":")[0].strip() for line in caught.value.message.splitlines()[1:]]
    assert sorted(refused) == sorted(set(FOUND_BY_CONTENT) - {fixture, "pkg/keys/deploy_key.txt"})
    for path in refused:
        (folder / path).unlink()
    verdict = check_context(service, build_context(service, dockerignore, "FROM scratch\n", {}))
    assert [(entry.path, [s.rule_id for s in found]) for entry, found in verdict.allowed] == [
        ("pkg/keys/deploy_key.txt", ["private-key"]), (fixture, ["github-pat"])]


# ---- the allow entry in image.yaml -------------------------------------------------------------------

def test_allow_entry_loads(tmp_path: Path) -> None:
    folder = service_folder(tmp_path, extra_spec=(
        "context:\n  allow_secrets:\n"
        "    - path: pkg/keys/README.txt\n      reason: sample key from the vendor's docs\n"
        "      expires: 2025-06-01\n"))
    assert load(folder).allowed_secrets == (AllowedSecret(
        "pkg/keys/README.txt", "sample key from the vendor's docs", date(2025, 6, 1),
        "images/svc/image.yaml:10"),)
    assert load(service_folder(tmp_path / "plain")).allowed_secrets == ()


ENTRY = "context:\n  allow_secrets:\n    - {path: pkg/keys/README.txt, reason: why, expires: 2025-06-01}\n"


@pytest.mark.parametrize(("text", "expected"), [
    (ENTRY.replace("2025-06-01", "2025-05-31"),
     "images/svc/image.yaml:10: context.allow_secrets[0].expires: expired on 2025-05-31: take the "
     "file out of the build context, or review the reason and renew the date"),
    (ENTRY.replace("reason: why, ", ""),
     "images/svc/image.yaml:10: context.allow_secrets[0]: missing required key 'reason'"),
    (ENTRY.replace("reason: why", "reason: ''"),
     "images/svc/image.yaml:10: context.allow_secrets[0].reason: must not be empty"),
    (ENTRY.replace(", expires: 2025-06-01", ""),
     "images/svc/image.yaml:10: context.allow_secrets[0]: missing required key 'expires'"),
    (ENTRY.replace("2025-06-01", "next year"),
     "images/svc/image.yaml:10: context.allow_secrets[0].expires: 'next year' is not a date (YYYY-MM-DD)"),
    (ENTRY.replace("2025-06-01", "2025-13-01"),
     "images/svc/image.yaml:10: context.allow_secrets[0].expires: invalid value: month must be in 1..12"),
    (ENTRY.replace("pkg/keys/README.txt", "pkg/keys/nope.pem"),
     "images/svc/image.yaml:10: context.allow_secrets[0].path: 'pkg/keys/nope.pem' does not exist"),
    (ENTRY.replace("pkg/keys/README.txt", "pkg/keys"),
     "images/svc/image.yaml:10: context.allow_secrets[0].path: 'pkg/keys' is not a file"),
    (ENTRY.replace("pkg/keys/README.txt", "../../etc/passwd"),
     "context.allow_secrets[0].path: '../../etc/passwd' must be a relative path inside the service"),
    (ENTRY + "    - {path: pkg/keys/README.txt, reason: again, expires: 2025-06-01}\n",
     "images/svc/image.yaml:11: context.allow_secrets[1].path: 'pkg/keys/README.txt' is listed twice"),
    (ENTRY.replace("allow_secrets", "allow_secret"),
     "images/svc/image.yaml:9: context.allow_secret: unknown key (did you mean 'allow_secrets'?)"),
    (ENTRY.replace("expires:", "until:"),
     "images/svc/image.yaml:10: context.allow_secrets[0].until: unknown key"),
], ids=["expired", "no-reason", "empty-reason", "no-expiry", "not-a-date", "impossible-date",
        "missing-file", "directory", "outside", "twice", "typo", "unknown-key"])
def test_bad_allow_entry_is_one_spec_error(tmp_path: Path, text: str, expected: str) -> None:
    folder = service_folder(tmp_path, extra_spec=text)
    with pytest.raises(SpecError) as caught:
        load(folder)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_expired_entry_through_the_cli_is_one_line_exit_2(tmp_path: Path) -> None:
    for name in ("templates", "build"):
        shutil.copytree(ROOT / name, tmp_path / name)
    yesterday = date.today() - timedelta(days=1)
    service_folder(tmp_path, extra_spec=ENTRY.replace("2025-06-01", f"{yesterday:%Y-%m-%d}"))
    result = subprocess.run([sys.executable, "-m", "builder", "-C", str(tmp_path), "render"],
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: images/svc/image.yaml:10: context.allow_secrets[0].expires: expired on "
        f"{yesterday:%Y-%m-%d}: take the file out of the build context, or review the reason and "
        "renew the date")
    assert not (tmp_path / "build" / "svc").exists()


def test_file_names_with_brackets_are_printed_as_they_are(tmp_path: Path) -> None:
    """Paths like `[id].py` are common (routing by file name); the terminal must not read them as
    markup and swallow them."""
    for name in ("templates", "build"):
        shutil.copytree(ROOT / name, tmp_path / name)
    service_folder(tmp_path, extra_spec=ENTRY.replace("pkg/keys/README.txt", "'pkg/[id].py'"))
    result = subprocess.run([sys.executable, "-m", "builder", "-C", str(tmp_path), "render"],
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 2
    # Refused by the strict path rule, and the message shows the name as written.
    assert "context.allow_secrets[0].path: 'pkg/[id].py' has '['" in result.stderr
