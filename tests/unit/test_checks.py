"""The registered promise checks on hand-made attack surfaces: no engine, every id stable."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from builder.inspect import checks
from builder.inspect.checks import REGISTRY, CheckResult, evaluate, failed
from builder.inspect.surface import AttackSurface
from builder.spec.catalog import Promises

ROOT = Path(__file__).resolve().parents[2]
DISTROLESS = Promises(user=65532, runs_as_root=False, shell=False, package_manager=False,
                      pip=False, compilers=False, setuid=False, world_writable=False,
                      package_caches=False)
CONFIG = {"User": "65532:65532"}


def surface(**changes: object) -> AttackSurface:
    """A clean distroless-like surface, with `changes` applied."""
    clean = AttackSurface(image="svc:prod", user="65532:65532", runs_as_root=False, shells=(),
                          package_managers=(), compilers=(), pip_module=False, setuid_files=(),
                          world_writable=(), package_caches=(), exposed_ports=("4567/tcp",))
    return dataclasses.replace(clean, **changes)  # type: ignore[arg-type]


def by_id(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.id: result for result in results}


def test_a_clean_image_keeps_every_distroless_promise() -> None:
    results = evaluate(DISTROLESS, surface(), CONFIG)
    assert [r.id for r in results] == list(REGISTRY)  # all nine, in registry order
    assert failed(results) == []
    assert by_id(results)["IW-USER-002"].detail == "USER 65532:65532"
    assert by_id(results)["IW-SHELL-001"].detail == "no"


@pytest.mark.parametrize(("change", "broken", "detail"), [
    ({"shells": ("/bin/busybox", "/bin/sh")}, "IW-SHELL-001",
     "promised no, found yes (/bin/busybox, /bin/sh)"),
    ({"package_managers": ("/sbin/apk",)}, "IW-PKG-001", "promised no, found yes (/sbin/apk)"),
    ({"pip_module": True}, "IW-PKG-002", "promised no, found yes (pip module)"),
    ({"package_caches": ("/var/lib/apt/lists/",)}, "IW-PKG-003",
     "promised no, found yes (/var/lib/apt/lists/)"),
    ({"compilers": ("/usr/bin/gcc",)}, "IW-TOOL-001", "promised no, found yes (/usr/bin/gcc)"),
    ({"setuid_files": tuple(f"/usr/bin/s{i}" for i in range(6))}, "IW-FS-001",
     "promised no, found yes (/usr/bin/s0, /usr/bin/s1, /usr/bin/s2, /usr/bin/s3, … (6 in all))"),
    ({"world_writable": ("/app/data",)}, "IW-FS-002", "promised no, found yes (/app/data)"),
])
def test_each_broken_promise_fails_its_own_check_only(change: dict[str, object], broken: str,
                                                      detail: str) -> None:
    results = evaluate(DISTROLESS, surface(**change), CONFIG)
    assert [(r.id, r.detail) for r in failed(results)] == [(broken, detail)]


def test_pip_as_a_command_is_pip_not_a_package_manager() -> None:
    results = by_id(evaluate(DISTROLESS, surface(package_managers=("/usr/bin/pip3",)), CONFIG))
    assert not results["IW-PKG-002"].passed and results["IW-PKG-001"].passed


def test_root_breaks_both_user_promises() -> None:
    results = by_id(evaluate(DISTROLESS, surface(user="", runs_as_root=True), {"User": ""}))
    assert results["IW-USER-001"].detail == "promised no, found yes (USER unset)"
    assert results["IW-USER-002"].detail == "promised uid 65532, found USER unset"
    assert results["IW-USER-002"].found == "unset"


@pytest.mark.parametrize("user", ["10001:10001", "nonroot", "65532x"])
def test_another_or_a_named_user_is_not_the_promised_uid(user: str) -> None:
    result = by_id(evaluate(DISTROLESS, surface(user=user), {"User": user}))["IW-USER-002"]
    assert not result.passed and result.detail == f"promised uid 65532, found USER {user}"


def test_a_promised_tool_that_is_missing_fails() -> None:
    dev = Promises(user=65532, shell=True, package_manager=True, pip=True)
    results = evaluate(dev, surface(), CONFIG)
    assert [(r.id, r.detail) for r in failed(results)] == [
        ("IW-SHELL-001", "promised yes, found no"),
        ("IW-PKG-001", "promised yes, found no"),
        ("IW-PKG-002", "promised yes, found no"),
    ]


def test_what_is_not_promised_is_not_checked() -> None:
    results = evaluate(Promises(user=65532), surface(shells=("/bin/sh",), compilers=("/bin/cc",)),
                       CONFIG)
    assert [r.id for r in results] == ["IW-USER-002"]


def test_every_promise_has_exactly_one_check_with_a_stable_id() -> None:
    promises = [field.name for field in dataclasses.fields(Promises)]
    assert sorted(check.promise for check in REGISTRY.values()) == sorted(promises)
    for check_id in REGISTRY:
        assert re.fullmatch(r"IW-[A-Z]+-\d{3}", check_id), check_id
        assert not check_id.startswith("IW-CFG-")  # those are builder/inspect/config.py's


def test_a_second_check_for_a_promise_is_refused() -> None:
    def never(surface: AttackSurface, config: checks.ImageConfig) -> checks.Observation:
        return checks.Observation(False)

    with pytest.raises(ValueError, match="registered twice"):
        checks.register("IW-SHELL-002", "shell", "another shell check")(never)
    with pytest.raises(ValueError, match="registered twice"):
        checks.register("IW-SHELL-001", "healthcheck", "an id used again")(never)
    assert "IW-SHELL-002" not in REGISTRY and REGISTRY["IW-SHELL-001"].promise == "shell"


def test_every_id_is_documented_in_the_module_and_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for check_id, check in REGISTRY.items():
        assert re.search(rf"\| {check_id} +\| {check.promise} ", checks.__doc__ or ""), check_id
        assert f"`{check_id}`" in readme, check_id

