"""templates/catalog.yaml: the real one loads; a broken one is one SpecError naming file, line and
key, through the same validator as image.yaml."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.core.errors import SpecError
from builder.project import Project
from builder.spec.catalog import FAMILIES, Promises, load_catalog

ROOT = Path(__file__).resolve().parents[2]
CATALOG = (ROOT / "templates" / "catalog.yaml").read_text()


def test_the_catalog_loads_with_typed_promises(project: Project) -> None:
    catalog = project.catalog
    assert catalog.flavor_names == ("alpine", "distroless")
    distroless = catalog.flavors["distroless"]
    assert distroless.promises == Promises(
        user=65532, runs_as_root=False, shell=False, package_manager=False, pip=False,
        compilers=False, setuid=False, world_writable=False, package_caches=False)
    assert catalog.flavors["alpine"].promises.shell is True  # busybox
    assert catalog.dev.promises.shell is True and catalog.dev.promises.compilers is None
    # `user` is written once, as a promise; the templates read it through Target.user.
    assert (catalog.dev.user, distroless.user) == (10001, 65532)
    assert {base.family for base in catalog.bases.values()} <= set(FAMILIES)
    dev_python = catalog.bases[catalog.dev.base].python
    assert {catalog.bases[t.base].python for t in catalog.flavors.values()} == {dev_python}


def test_user_appears_once_per_target_in_the_file() -> None:
    assert CATALOG.count("user:") == 1 + len(load_catalog(ROOT / "templates").flavors)


def broken(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of templates/ whose catalog has `old` replaced by `new` (exactly once)."""
    assert CATALOG.count(old) == 1, old
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "catalog.yaml").write_text(CATALOG.replace(old, new))
    return templates


def line_of(old: str) -> int:
    """The 1-based line where `old` starts in the original catalog."""
    return CATALOG[:CATALOG.index(old)].count("\n") + 1


def load_error(tmp_path: Path, old: str, new: str) -> str:
    with pytest.raises(SpecError) as caught:
        load_catalog(broken(tmp_path, old, new))
    return caught.value.message


ALPINE_BUILDER = '    builder: "alpine:3.20"\n'


def test_unknown_key_is_named_with_did_you_mean_and_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, ALPINE_BUILDER, ALPINE_BUILDER + "    buidler: x\n")
    line = line_of(ALPINE_BUILDER) + 1
    assert message == (f"templates/catalog.yaml:{line}: flavors.alpine.buidler: unknown key "
                       "(did you mean 'builder'?)")


def test_unknown_promise_is_named_with_did_you_mean(tmp_path: Path) -> None:
    old = "      shell: false\n"  # distroless's
    message = load_error(tmp_path, old, "      shel: false\n")
    assert message == (f"templates/catalog.yaml:{line_of(old)}: "
                       "flavors.distroless.promises.shel: unknown key (did you mean 'shell'?)")


def test_a_family_templates_do_not_know_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, "family: apk", "family: yum")
    assert message == (f"templates/catalog.yaml:{line_of('family: apk')}: "
                       "bases.'alpine:3.20'.family: 'yum' is not a package family the templates "
                       "know; known: apt, apk, none")


def test_a_flavor_on_another_python_minor_than_dev_is_refused_at_load(tmp_path: Path) -> None:
    old = '    base: "alpine:3.20"\n'
    message = load_error(tmp_path, old, '    base: "debian:12"\n')
    assert message == (f"templates/catalog.yaml:{line_of(old)}: flavors.alpine.base: "
                       "flavor alpine: base debian:12 ships Python 3.11, dev's base ubuntu:24.04 "
                       "ships 3.12: dev and prod must run the same Python minor version")


def test_a_builder_on_another_python_minor_is_refused_too(tmp_path: Path) -> None:
    message = load_error(tmp_path, ALPINE_BUILDER, '    builder: "debian:12"\n')
    assert "flavors.alpine.builder: flavor alpine: builder debian:12 ships Python 3.11" in message


def test_an_unquoted_python_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    message = load_error(tmp_path, 'python: "3.11"', "python: 3.10")
    assert message.endswith("bases.'debian:12'.python: 3.1 is a number; quote it (\"3.12\")")


def test_an_undeclared_base_is_named_with_did_you_mean(tmp_path: Path) -> None:
    message = load_error(tmp_path, '    base: "alpine:3.20"\n', '    base: "alpine:3.2"\n')
    assert message.endswith("flavors.alpine.base: 'alpine:3.2' is not declared under bases: "
                            "(did you mean 'alpine:3.20'?)")


def test_a_builder_without_a_package_manager_is_refused(tmp_path: Path) -> None:
    old = '    builder: "ubuntu:24.04"\n    promises:\n      user: 65532\n'
    message = load_error(tmp_path, old, old.replace(
        "ubuntu:24.04", "imagewright/distroless-python:3.12-ubuntu24.04"))
    assert message.endswith("flavors.distroless.builder: flavor distroless: builder "
                            "imagewright/distroless-python:3.12-ubuntu24.04 has no package manager "
                            "(family none); a builder needs one of apt, apk")


def test_promises_are_required_and_must_agree(tmp_path: Path) -> None:
    old = "    promises:\n      user: 10001\n"
    assert load_error(tmp_path / "a", old, "    promise:\n      user: 10001\n").endswith(
        "variants.dev.promise: unknown key (did you mean 'promises'?)")
    assert load_error(tmp_path / "b", old, "    promises:\n      user: 0\n").endswith(
        "variants.dev.promises.runs_as_root: false contradicts user: 0")
    assert load_error(tmp_path / "c", "      shell: false\n", "      shell: \"false\"\n").endswith(
        "flavors.distroless.promises.shell: expected true or false, got 'false'")


def test_a_debug_twin_needs_a_flavor_that_promises_no_shell(tmp_path: Path) -> None:
    message = load_error(tmp_path, "      shell: false\n", "      shell: true\n")
    assert message.endswith("flavors.distroless.debug_twin: flavor distroless: a debug twin adds "
                            "a shell, so only a flavor that promises `shell: false` has one")


def test_a_missing_template_and_a_bad_recipe_kind_are_named(tmp_path: Path) -> None:
    assert load_error(tmp_path / "a", "template: prod-alpine.Dockerfile.j2",
                      "template: prod-alpin.Dockerfile.j2").endswith(
        "flavors.alpine.template: 'prod-alpin.Dockerfile.j2' is not a file in templates/")
    assert load_error(tmp_path / "b", "kind: mmdebstrap\n      suite: bookworm",
                      "kind: debootstrap\n      suite: bookworm").endswith(
        "bases.'debian:12'.bootstrap.kind: 'debootstrap' is not a bootstrap kind "
        "(did you mean 'mmdebstrap'?); known: mmdebstrap, dockerfile")


def test_a_broken_catalog_is_one_line_exit_2_nothing_written(tmp_path: Path) -> None:
    for folder in ("images", "build"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    broken(tmp_path, "family: apk", "family: yum")
    before = {path: path.read_bytes() for path in (tmp_path / "build").rglob("*") if path.is_file()}
    result = subprocess.run([sys.executable, "-m", "builder", "-C", str(tmp_path), "render"],
                            capture_output=True, text=True, check=False, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: templates/catalog.yaml:{line_of('family: apk')}: "
        "bases.'alpine:3.20'.family: 'yum' is not a package family the templates know; "
        "known: apt, apk, none"]
    after = {path: path.read_bytes() for path in (tmp_path / "build").rglob("*") if path.is_file()}
    assert after == before


def test_every_promise_the_catalog_can_make_is_a_promises_field() -> None:
    names = [field.name for field in dataclasses.fields(Promises)]
    assert names[0] == "user" and len(set(names)) == len(names)


SOURCES_SET = "      set:\n        stdlib_sources: true\n"


def test_a_recipe_setting_its_values_file_lacks_is_named_with_did_you_mean(tmp_path: Path) -> None:
    message = load_error(tmp_path, SOURCES_SET, "      set:\n        stdlib_source: true\n")
    assert message == (f"templates/catalog.yaml:{line_of('        stdlib_sources: true')}: "
                       "bases.'imagewright/distroless-python:3.12-ubuntu24.04-sources'.bootstrap."
                       "set.stdlib_source: is not a value of templates/bases/distroless-python.yaml "
                       "(did you mean 'stdlib_sources'?)")


def test_a_recipe_setting_must_be_a_plain_value(tmp_path: Path) -> None:
    message = load_error(tmp_path, SOURCES_SET, "      set:\n        stdlib_sources: [true]\n")
    assert message.endswith("set.stdlib_sources: expected a string, a number or true/false")


def test_a_flavors_base_with_sources_must_be_declared(tmp_path: Path) -> None:
    old = '    base_with_sources: "imagewright/distroless-python:3.12-ubuntu24.04-sources"\n'
    message = load_error(tmp_path, old, old.replace("-sources", "-source"))
    assert message.startswith(f"templates/catalog.yaml:{line_of(old)}: "
                              "flavors.distroless.base_with_sources: "
                              "'imagewright/distroless-python:3.12-ubuntu24.04-source' is not "
                              "declared under bases: (did you mean")
