"""A Docker engine that answers, on a fresh machine: `python3 -m builder.engine.setup` (`make engine`).

When a daemon answers and every host tool the project needs is there, this prints one line and
returns. Otherwise, as root on Debian or Ubuntu, it installs what is missing — the engine
(docker.io), mmdebstrap (base bootstraps), Chromium (the compare report's screenshot test) and the
buildx and Compose v2 CLI plugins — and starts `dockerd` in its own session, logging to
DAEMON_LOG, then waits until it answers. Anywhere else it says in one line what to run, and exits 1.

`make` runs this before the project's virtualenv exists, so this module (like
`builder/__init__.py` and `builder/engine/__init__.py`) imports the standard library only, and it
prints for itself instead of going through `builder.cli`. The decisions (`plan`, `packages_for`,
`debian_mirror`, `running_daemon_pid`) are pure or read only what they are given, so they are
tested without changing the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DAEMON_LOG = Path("/var/log/imagewright-dockerd.log")
PID_FILE = Path("/var/run/docker.pid")
LOCAL_SOCKET = "unix:///var/run/docker.sock"
OS_RELEASE = Path("/etc/os-release")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# Debian 13's archive is where Debian 12 gets buildx and Compose v2: single Go binaries whose only
# dependency is glibc >= 2.34, so their .debs install on Debian 12 as they are.
PLUGIN_SUITE = "trixie"
FIRST_DEBIAN_WITH_PLUGINS = 13
START_TIMEOUT_S = 90.0
PROBE_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 30

# What the project needs on the host, each named by the command (or `docker <plugin>`) that proves
# it is there. Packages per distro family come from `packages_for`.
TOOLS = ("docker", "dockerd", "mmdebstrap", "chromium", "buildx", "compose")
PLUGINS = ("buildx", "compose")


class SetupError(Exception):
    """A step failed; the message is one line (plus a log tail where the daemon failed)."""


@dataclass(frozen=True)
class Distro:
    """The fields of /etc/os-release that decide package names and sources."""

    id: str
    like: frozenset[str] = frozenset()
    version_id: str = ""
    codename: str = ""

    @classmethod
    def parse(cls, os_release: str) -> Distro:
        fields: dict[str, str] = {}
        for line in os_release.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                fields[key] = value.strip().strip("\"'")
        return cls(id=fields.get("ID", "").lower(),
                   like=frozenset(fields.get("ID_LIKE", "").lower().split()),
                   version_id=fields.get("VERSION_ID", ""),
                   codename=fields.get("VERSION_CODENAME", ""))

    @property
    def family(self) -> str | None:
        """"debian" or "ubuntu" (derivatives by ID_LIKE), else None: a distro this cannot install on."""
        for name in ("ubuntu", "debian"):
            if self.id == name or name in self.like:
                return name
        return None

    @property
    def debian_major(self) -> int | None:
        """Debian's release number; None for testing/unstable (no VERSION_ID) and for non-Debian."""
        if self.id != "debian":
            return None
        major = self.version_id.split(".")[0]
        return int(major) if major.isdigit() else None


@dataclass(frozen=True)
class Package:
    """A package to install: from the host's own archive (suite None) or as a .deb from a newer suite."""

    name: str
    suite: str | None = None


def packages_for(missing: Iterable[str], distro: Distro) -> tuple[Package, ...]:
    """The packages that bring the missing tools on this distro, each once, in TOOLS order."""
    ubuntu = distro.family == "ubuntu"
    major = distro.debian_major
    plugin_suite = PLUGIN_SUITE if major is not None and major < FIRST_DEBIAN_WITH_PLUGINS else None
    names = {
        "docker": Package("docker.io"),
        "dockerd": Package("docker.io"),
        "mmdebstrap": Package("mmdebstrap"),
        "chromium": Package("chromium-browser" if ubuntu else "chromium"),
        "buildx": Package("docker-buildx", None if ubuntu else plugin_suite),
        # Debian 12's own `docker-compose` is the old Python v1; Ubuntu calls v2 docker-compose-v2.
        "compose": Package("docker-compose-v2" if ubuntu else "docker-compose",
                           None if ubuntu else plugin_suite),
    }
    wanted = set(missing)
    return tuple(dict.fromkeys(names[tool] for tool in TOOLS if tool in wanted))


@dataclass(frozen=True)
class Host:
    """What a survey of this machine found."""

    engine_version: str | None  # the daemon's version when it answers, else None
    probe_error: str = ""  # why it does not answer (the CLI's last line)
    missing: tuple[str, ...] = ()  # names from TOOLS that are not there
    root: bool = False
    distro: Distro | None = None  # None when /etc/os-release is unreadable
    docker_host: str = ""  # DOCKER_HOST, when set
    plugin_versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What to do about a Host: install, start the daemon, or tell a person what to run."""

    install: tuple[Package, ...] = ()
    start_daemon: bool = False
    advice: str = ""  # one line for a person; empty when there is nothing to say
    ok: bool = True  # False: nothing here can make an engine answer; exit 1 after the advice


def plan(host: Host) -> Plan:
    supported = host.distro is not None and host.distro.family is not None
    can_install = host.root and supported
    if host.engine_version is not None:
        # A daemon answers, perhaps another machine's: no dockerd is needed here.
        missing = tuple(tool for tool in host.missing if tool != "dockerd")
        if not missing:
            return Plan()
        if can_install:
            assert host.distro is not None
            return Plan(install=packages_for(missing, host.distro))
        # The engine works; what is missing only some targets need (bases, buildx, the screenshot test).
        how = "`sudo python3 -m builder.engine.setup`" if supported else "the system's package manager"
        return Plan(advice=f"engine: {', '.join(missing)} missing (some targets need them): install them "
                           f"with {how}")
    if host.docker_host and host.docker_host != LOCAL_SOCKET:
        return Plan(ok=False, advice=f"engine: DOCKER_HOST={host.docker_host} does not answer: start that "
                                     "engine, or unset DOCKER_HOST to use this machine's")
    if "permission denied" in host.probe_error.lower():
        return Plan(ok=False, advice="engine: the Docker socket refuses this user: join the docker group "
                                     "or run as root")
    if not can_install:
        if host.distro is None or host.distro.family is None:
            return Plan(ok=False, advice="engine: no Docker engine answers: install Docker Engine and start "
                                         "dockerd (automatic only on Debian/Ubuntu)")
        return Plan(ok=False, advice="engine: no Docker engine answers: run `sudo python3 -m "
                                     "builder.engine.setup` (or `sudo make engine`)")
    assert host.distro is not None
    return Plan(install=packages_for(host.missing, host.distro), start_daemon=True)


def debian_mirror(sources: Iterable[str], codename: str) -> str | None:
    """The archive URI the host's apt sources use for `codename` itself (not -security/-updates).

    Its newer suites come from the same mirror, so nothing here names a host of its own. `sources`
    are the texts of sources.list files (one-line format) and .sources files (deb822).
    """
    for text in sources:
        for stanza in text.split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.lstrip().startswith("#") and not line.startswith((" ", "\t")):
                    fields[key.strip().lower()] = value.strip()
            if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
                continue
            if codename in fields.get("suites", "").split() and fields.get("uris"):
                return fields["uris"].split()[0]
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            if len(words) > 1 and words[1].startswith("["):  # [signed-by=… arch=…]
                options_end = next((i for i, word in enumerate(words) if word.endswith("]")), len(words))
                words = ["deb", *words[options_end + 1:]]
            if len(words) >= 3 and words[2] == codename:
                return words[1]
    return None


def running_daemon_pid(pid_file: Path, process_name: str = "dockerd") -> int | None:
    """The pid in `pid_file` when that process is alive and is `process_name`; else None.

    A daemon killed with its session leaves its pid file behind, and the pid may since have been
    given to another process: trusting either would make `dockerd` refuse to start, or make this
    wait for a daemon that is not there.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    return pid if name == process_name else None


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# ---- probing and changing this machine -------------------------------------------------------------

def _say(line: str, error: bool = False) -> None:
    print(line, file=sys.stderr if error else sys.stdout, flush=True)


def _which(command: str) -> str | None:
    # dockerd lives in /usr/sbin, which a non-root PATH often lacks.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(command, path=path)


def _docker(args: Sequence[str], timeout: float = PROBE_TIMEOUT_S) -> tuple[int, str, str]:
    docker = _which("docker")
    if docker is None:
        return 127, "", "the docker CLI is not installed"
    try:
        result = subprocess.run([docker, *args], capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", f"docker {' '.join(args)} did not answer within {timeout:.0f} s"
    return result.returncode, result.stdout.strip(), result.stderr.strip()


def probe_engine() -> tuple[str | None, str]:
    """(the daemon's version, "") when it answers, else (None, why not)."""
    code, out, err = _docker(["info", "--format", "{{.ServerVersion}}"])
    if code == 0 and out and "error" not in out.lower():
        return out, ""
    said = (err or out).splitlines()
    return None, said[-1] if said else f"docker info exited {code}"


def _plugin_version(plugin: str) -> str | None:
    code, out, _ = _docker([plugin, "version"], timeout=15)
    if code != 0 or not out:
        return None
    # buildx says "github.com/docker/buildx 0.13.1 …", compose "Docker Compose version 2.26.1".
    words = out.split()
    return words[1] if plugin == "buildx" and len(words) > 1 else words[-1]


def survey() -> Host:
    engine_version, probe_error = probe_engine()
    plugin_versions = {plugin: version for plugin in PLUGINS
                       if (version := _plugin_version(plugin)) is not None}
    missing = [tool for tool in TOOLS
               if (tool not in PLUGINS and _which(tool) is None
                   and not (tool == "chromium" and _which("chromium-browser")))
               or (tool in PLUGINS and tool not in plugin_versions)]
    try:
        distro: Distro | None = Distro.parse(OS_RELEASE.read_text())
    except OSError:
        distro = None
    if distro is not None and not (_which("apt-get") and _which("dpkg")):
        distro = None
    return Host(engine_version=engine_version, probe_error=probe_error, missing=tuple(missing),
                root=os.geteuid() == 0, distro=distro, docker_host=os.environ.get("DOCKER_HOST", ""),
                plugin_versions=plugin_versions)


def _run(command: Sequence[str], what: str, cwd: Path | None = None) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [""]
        raise SetupError(f"{what} failed (exit {result.returncode}): {last[0]}")


def _apt_sources() -> list[str]:
    files: list[Path] = []
    for place in APT_SOURCES:
        if place.is_dir():
            files.extend([*sorted(place.glob("*.sources")), *sorted(place.glob("*.list"))])
        else:
            files.append(place)
    texts = []
    for path in files:
        try:
            texts.append(path.read_text(errors="replace"))
        except OSError:
            continue
    return texts


def _install_from_suite(names: Sequence[str], suite: str, distro: Distro) -> None:
    """Fetch `names` as .debs from `suite` of the host's own Debian mirror, then dpkg -i them.

    apt runs on a private sources list, lists and cache, so the host's apt keeps knowing nothing of
    the newer suite and no other package can be upgraded from it.
    """
    mirror = debian_mirror(_apt_sources(), distro.codename)
    if mirror is None:
        raise SetupError(f"no apt source for Debian {distro.codename or '?'} in /etc/apt to fetch "
                         f"{' '.join(names)} from Debian {suite}")
    with tempfile.TemporaryDirectory(prefix="imagewright-plugins-") as temp:
        root = Path(temp)
        (root / "lists" / "partial").mkdir(parents=True)
        (root / "cache" / "archives" / "partial").mkdir(parents=True)
        (root / "sources.list").write_text(
            f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {suite} main\n")
        options = ["-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
                   "-o", "Dir::Etc::SourceParts=/dev/null", "-o", f"Dir::State::Lists={root / 'lists'}",
                   "-o", f"Dir::Cache={root / 'cache'}", "-o", "APT::Sandbox::User=root"]
        _run(["apt-get", "-qq", *options, "update"], f"apt-get update for Debian {suite}", cwd=root)
        _run(["apt-get", "-qq", *options, "download", *names], f"apt-get download {' '.join(names)}",
             cwd=root)
        debs = sorted(str(deb) for deb in root.glob("*.deb"))
        _run(["dpkg", "-i", *debs], f"dpkg -i {' '.join(names)}")


def install(packages: Sequence[Package], distro: Distro) -> None:
    own = [package.name for package in packages if package.suite is None]
    if own:
        _say(f"engine: installing {' '.join(own)} (apt-get)")
        _run(["apt-get", "update", "-qq"], "apt-get update")
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *own],
             f"apt-get install {' '.join(own)}")
    suites = dict.fromkeys(package.suite for package in packages if package.suite is not None)
    for suite in suites:
        assert suite is not None
        names = [package.name for package in packages if package.suite == suite]
        _say(f"engine: installing {' '.join(names)} from Debian {suite} (.debs needing only glibc >= 2.34)")
        _install_from_suite(names, suite, distro)


def start_daemon(log: Path = DAEMON_LOG, timeout: float = START_TIMEOUT_S) -> str:
    """Start dockerd in its own session (unless a live one is still starting); its version once it answers."""
    process: subprocess.Popen[bytes] | None = None
    pid = running_daemon_pid(PID_FILE)
    if pid is not None:
        _say(f"engine: dockerd (pid {pid}) is running but does not answer yet; waiting")
    else:
        dockerd = _which("dockerd")
        if dockerd is None:
            raise SetupError("dockerd is not installed (apt-get install docker.io)")
        PID_FILE.unlink(missing_ok=True)  # stale: dockerd refuses to start while it exists
        _say(f"engine: starting dockerd (log: {log})")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as output:
            process = subprocess.Popen([dockerd], stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        version, _ = probe_engine()
        if version is not None:
            return version
        if process is not None and process.poll() is not None:
            raise SetupError(f"dockerd exited with code {process.returncode}; the end of {log}:\n"
                             f"{log_tail(log)}")
        time.sleep(0.5)
    raise SetupError(f"dockerd did not answer within {timeout:.0f} s; the end of {log}:\n{log_tail(log)}")


def _summary(version: str, plugin_versions: dict[str, str], seconds: float) -> str:
    plugins = ", ".join(f"{plugin} {plugin_versions[plugin]}" for plugin in PLUGINS
                        if plugin in plugin_versions)
    return f"engine: Docker {version} answers" + (f"; {plugins}" if plugins else "") + f" ({seconds:.1f} s)"


def ensure_engine() -> int:
    started = time.monotonic()
    host = survey()
    decision = plan(host)
    if decision.advice:
        _say(decision.advice, error=not decision.ok)
    if not decision.ok:
        return 1
    try:
        if decision.install:
            assert host.distro is not None
            install(decision.install, host.distro)
        version = host.engine_version
        if decision.start_daemon:
            # The docker CLI may be new: a daemon it could not reach before may answer now.
            version = probe_engine()[0] or start_daemon()
        assert version is not None
        plugin_versions = host.plugin_versions
        if decision.install and set(PLUGINS) & set(host.missing):
            plugin_versions = {plugin: found for plugin in PLUGINS
                               if (found := _plugin_version(plugin)) is not None}
            broken = [plugin for plugin in PLUGINS
                      if plugin in host.missing and plugin not in plugin_versions]
            if broken:
                raise SetupError(f"`docker {broken[0]} version` still fails after installing it")
    except SetupError as error:
        _say(f"engine: {error}", error=True)
        return 1
    _say(_summary(version, plugin_versions, time.monotonic() - started))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m builder.engine.setup",
        description="Make a Docker engine answer here: install what is missing and start dockerd "
                    "(as root on Debian/Ubuntu), or say what to run.")
    parser.add_argument("--log-tail", action="store_true",
                        help=f"print the end of {DAEMON_LOG} (the log of a dockerd this started) and exit")
    args = parser.parse_args(argv)
    if args.log_tail:
        tail = log_tail(DAEMON_LOG)
        if tail:
            _say(f"engine: the end of {DAEMON_LOG}:\n{tail}")
        return 0
    return ensure_engine()


if __name__ == "__main__":
    raise SystemExit(main())
