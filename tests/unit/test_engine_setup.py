"""`python3 -m builder.engine.setup`: stdlib only, and its decisions — what to install from where,
whether to start dockerd, what to tell a person — for every kind of host, without changing this one."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.engine.setup import (
    LOCAL_SOCKET,
    Distro,
    Host,
    Package,
    Plan,
    debian_mirror,
    log_tail,
    packages_for,
    plan,
    running_daemon_pid,
)

ROOT = Path(__file__).resolve().parents[2]

DEBIAN_12 = Distro.parse('''PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
''')
DEBIAN_13 = Distro.parse('ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n')
DEBIAN_SID = Distro.parse('PRETTY_NAME="Debian GNU/Linux trixie/sid"\nID=debian\n')
UBUNTU_24 = Distro.parse('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n')
MINT = Distro.parse('ID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="22"\n')
FEDORA = Distro.parse('ID=fedora\nVERSION_ID=41\n')
ALL_MISSING = ("docker", "dockerd", "mmdebstrap", "chromium", "buildx", "compose")


# ---- it runs before any dependency is installed ---------------------------------------------------

def test_imports_only_the_standard_library() -> None:
    """With site-packages switched off (-S), importing it loads nothing but stdlib and itself."""
    script = ("import sys, builder.engine.setup; "
              "print('\\n'.join(sorted(m for m in sys.modules "
              "if m != '__main__' and m.split('.')[0] not in sys.stdlib_module_names)))")
    result = subprocess.run([sys.executable, "-S", "-c", script], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["builder", "builder.engine", "builder.engine.setup"]


def test_runs_as_a_module_without_site_packages() -> None:
    result = subprocess.run([sys.executable, "-S", "-m", "builder.engine.setup", "--help"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "python3 -m builder.engine.setup" in result.stdout


def test_an_unreachable_docker_host_fails_in_one_line_and_touches_nothing() -> None:
    """The whole module, run for real: the remote-engine branch needs no engine and changes nothing."""
    result = subprocess.run([sys.executable, "-S", "-m", "builder.engine.setup"], cwd=ROOT,
                            env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "engine: DOCKER_HOST=unix:///nonexistent/docker.sock does not answer: start that engine, "
        "or unset DOCKER_HOST to use this machine's"]


def test_engine_package_init_is_a_docstring_only() -> None:
    body = ast.parse((ROOT / "builder" / "engine" / "__init__.py").read_text()).body
    assert len(body) == 1
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    assert isinstance(body[0].value.value, str)


# ---- the distro and its package names -------------------------------------------------------------

def test_os_release_parsing() -> None:
    assert (DEBIAN_12.id, DEBIAN_12.version_id, DEBIAN_12.codename) == ("debian", "12", "bookworm")
    assert DEBIAN_12.family == "debian" and DEBIAN_12.debian_major == 12
    assert UBUNTU_24.family == "ubuntu" and UBUNTU_24.debian_major is None
    assert MINT.family == "ubuntu"  # a derivative goes by ID_LIKE
    assert DEBIAN_SID.family == "debian" and DEBIAN_SID.debian_major is None
    assert FEDORA.family is None


def test_debian_12_takes_buildx_and_compose_v2_from_trixie() -> None:
    assert packages_for(ALL_MISSING, DEBIAN_12) == (
        Package("docker.io"), Package("mmdebstrap"), Package("chromium"),
        Package("docker-buildx", "trixie"), Package("docker-compose", "trixie"))


def test_newer_debian_has_the_plugins_in_its_own_archive() -> None:
    for distro in (DEBIAN_13, DEBIAN_SID):
        assert packages_for(["buildx", "compose"], distro) == (Package("docker-buildx"),
                                                              Package("docker-compose"))


def test_ubuntu_package_names() -> None:
    assert packages_for(ALL_MISSING, UBUNTU_24) == (
        Package("docker.io"), Package("mmdebstrap"), Package("chromium-browser"),
        Package("docker-buildx"), Package("docker-compose-v2"))


def test_only_what_is_missing_each_package_once() -> None:
    assert packages_for(["dockerd", "docker"], DEBIAN_12) == (Package("docker.io"),)
    assert packages_for(["compose"], DEBIAN_12) == (Package("docker-compose", "trixie"),)
    assert packages_for([], DEBIAN_12) == ()


# ---- the plan --------------------------------------------------------------------------------------

def host(engine: str | None = None, missing: tuple[str, ...] = (), root: bool = True,
         distro: Distro | None = DEBIAN_12, error: str = "", docker_host: str = "") -> Host:
    return Host(engine_version=engine, probe_error=error, missing=missing, root=root, distro=distro,
                docker_host=docker_host)


def test_answering_engine_with_everything_there_does_nothing() -> None:
    assert plan(host(engine="20.10.24")) == Plan()
    assert plan(host(engine="20.10.24", root=False, distro=None)) == Plan()


def test_answering_engine_as_root_installs_only_what_is_missing_and_starts_nothing() -> None:
    decision = plan(host(engine="20.10.24", missing=("buildx", "compose")))
    assert decision == Plan(install=(Package("docker-buildx", "trixie"), Package("docker-compose", "trixie")))


def test_answering_engine_without_root_says_what_is_missing_and_succeeds() -> None:
    decision = plan(host(engine="20.10.24", missing=("mmdebstrap", "chromium"), root=False))
    assert decision.ok and not decision.install and not decision.start_daemon
    assert "mmdebstrap, chromium missing" in decision.advice
    assert "sudo python3 -m builder.engine.setup" in decision.advice
    elsewhere = plan(host(engine="20.10.24", missing=("chromium",), distro=FEDORA))
    assert elsewhere.ok and not elsewhere.install and "package manager" in elsewhere.advice


def test_an_engine_that_answers_needs_no_local_dockerd() -> None:
    """E.g. DOCKER_HOST names another machine's engine: installing docker.io here would be useless."""
    assert plan(host(engine="24.0.7", missing=("dockerd",), docker_host="tcp://build-host:2376")) == Plan()
    assert plan(host(engine="24.0.7", missing=("dockerd", "mmdebstrap"))) == Plan(
        install=(Package("mmdebstrap"),))


def test_fresh_debian_as_root_installs_everything_then_starts_dockerd() -> None:
    decision = plan(host(missing=ALL_MISSING, error="the docker CLI is not installed"))
    assert decision.ok and decision.start_daemon and not decision.advice
    assert [package.name for package in decision.install] == [
        "docker.io", "mmdebstrap", "chromium", "docker-buildx", "docker-compose"]


def test_installed_but_stopped_daemon_is_started_without_installing() -> None:
    decision = plan(host(error="Cannot connect to the Docker daemon at unix:///var/run/docker.sock."))
    assert decision == Plan(start_daemon=True)


def test_no_daemon_without_root_names_the_command_and_fails() -> None:
    decision = plan(host(root=False, error="Cannot connect to the Docker daemon"))
    assert not decision.ok and not decision.install and not decision.start_daemon
    assert "sudo python3 -m builder.engine.setup" in decision.advice
    assert "\n" not in decision.advice


def test_no_daemon_on_another_distro_fails_with_one_line() -> None:
    for distro in (FEDORA, None):
        decision = plan(host(distro=distro, missing=ALL_MISSING))
        assert not decision.ok and not decision.install and not decision.start_daemon
        assert "install Docker Engine" in decision.advice and "\n" not in decision.advice


def test_a_remote_docker_host_is_never_replaced_by_a_local_daemon() -> None:
    decision = plan(host(docker_host="tcp://10.0.0.5:2376"))
    assert not decision.ok and not decision.start_daemon
    assert "DOCKER_HOST=tcp://10.0.0.5:2376" in decision.advice
    assert plan(host(docker_host=LOCAL_SOCKET)).start_daemon


def test_a_refused_socket_is_a_permission_problem_not_a_missing_daemon() -> None:
    decision = plan(host(root=False, error="permission denied while trying to connect to the Docker "
                                           "daemon socket at unix:///var/run/docker.sock"))
    assert not decision.ok and "docker group" in decision.advice


# ---- the Debian mirror the host already uses ------------------------------------------------------

DEB822 = """Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment: http://snapshot.example/archive/debian
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_mirror_from_deb822_skips_security_and_comments() -> None:
    assert debian_mirror([DEB822], "bookworm") == "http://mirror.example/debian"


def test_mirror_from_one_line_sources_with_options() -> None:
    text = ("# deb http://old.example/debian bookworm main\n"
            "deb http://security.example/debian-security bookworm-security main\n"
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            "http://local.example/debian bookworm main contrib\n")
    assert debian_mirror([text], "bookworm") == "http://local.example/debian"


def test_mirror_ignores_disabled_stanzas_and_other_suites() -> None:
    disabled = "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n"
    source_only = "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"
    other = "deb https://packages.example/apt cloud-sdk-bookworm main\n"
    assert debian_mirror([disabled, source_only, other], "bookworm") is None
    assert debian_mirror([disabled, DEB822], "bookworm") == "http://mirror.example/debian"
    assert debian_mirror([DEB822], "trixie") is None


# ---- a dead daemon's pid file -----------------------------------------------------------------------

def test_pid_file_missing_or_garbage_means_no_daemon(tmp_path: Path) -> None:
    assert running_daemon_pid(tmp_path / "docker.pid") is None
    (tmp_path / "docker.pid").write_text("not a pid\n")
    assert running_daemon_pid(tmp_path / "docker.pid") is None


def test_pid_of_a_dead_process_is_stale(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    (tmp_path / "docker.pid").write_text(f"{finished.pid}\n")
    assert running_daemon_pid(tmp_path / "docker.pid", "true") is None


def test_a_live_pid_counts_only_when_it_is_the_daemon(tmp_path: Path) -> None:
    """A pid given to another process since the daemon died must not be mistaken for it."""
    (tmp_path / "docker.pid").write_text(f"{os.getpid()}\n")  # this test's own, certainly alive
    own_name = Path("/proc/self/comm").read_text().strip()
    assert running_daemon_pid(tmp_path / "docker.pid", own_name) == os.getpid()
    assert running_daemon_pid(tmp_path / "docker.pid", "dockerd") is None


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "dockerd.log"
    assert log_tail(log) == ""
    log.write_text("".join(f"line {number}\n" for number in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"


@pytest.mark.parametrize("text", ["", "ID=\n", "garbage without equals\n"])
def test_unknown_os_release_is_not_installable(text: str) -> None:
    assert Distro.parse(text).family is None
    assert not plan(host(distro=Distro.parse(text))).ok
