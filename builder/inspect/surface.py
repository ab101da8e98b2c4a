"""Attack surface of an image, read from its exported filesystem and config.

Works on images with no shell (distroless): nothing runs inside the container; it is created,
exported as a tar stream, and removed.
"""

from __future__ import annotations

import io
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath

import docker
import docker.errors

from builder.engine.containers import created_container

BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")
SHELLS = ("sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox")
PACKAGE_MANAGERS = ("apt", "apt-get", "dpkg", "apk", "yum", "dnf", "rpm", "pip", "pip3")
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc", "ld", "as", "make")
# Caches a build should have cleaned in the same layer that filled them.
CACHE_DIRS = ("var/lib/apt/lists/", "var/cache/apt/", "var/cache/apk/", "root/.cache/pip/",
              "tmp/imagewright/")


@dataclass(frozen=True)
class AttackSurface:
    image: str
    user: str
    runs_as_root: bool
    shells: tuple[str, ...]
    package_managers: tuple[str, ...]
    compilers: tuple[str, ...]
    pip_module: bool
    setuid_files: tuple[str, ...]
    world_writable: tuple[str, ...]
    package_caches: tuple[str, ...]
    exposed_ports: tuple[str, ...]

    @property
    def shell_present(self) -> bool:
        return bool(self.shells)


@contextmanager
def _exported(client: docker.DockerClient, image: str) -> Iterator[tarfile.TarFile]:
    """The image's filesystem as a tar read while the engine streams it (nothing kept on disk)."""
    with created_container(client, image) as container:
        stream = io.BufferedReader(ChunkStream(container.export(chunk_size=1 << 20)), 1 << 20)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            yield tar


def exported_files(client: docker.DockerClient, image: str) -> Iterator[tarfile.TarInfo]:
    """Every entry of the image's filesystem, streamed (no file contents kept)."""
    with _exported(client, image) as tar:
        yield from tar


def files_containing(client: docker.DockerClient, image: str, needles: list[bytes],
                     max_size: int = 8 << 20) -> list[str]:
    """Paths of regular files (up to `max_size`) whose bytes contain any of `needles`."""
    found: list[str] = []
    with _exported(client, image) as tar:
        for member in tar:
            if member.isfile() and 0 < member.size <= max_size:
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                if any(needle in data for needle in needles):
                    found.append("/" + member.name)
    return found


def attack_surface(client: docker.DockerClient, image: str) -> AttackSurface:
    config = client.api.inspect_image(image)["Config"] or {}
    user = str(config.get("User") or "")
    shells: list[str] = []
    managers: list[str] = []
    compilers: list[str] = []
    setuid: list[str] = []
    writable: list[str] = []
    caches: set[str] = set()
    pip_module = False
    for member in exported_files(client, image):
        path = PurePosixPath(member.name)
        name = path.name
        if str(path.parent) in BIN_DIRS and (member.isfile() or member.issym()):
            if name in SHELLS:
                shells.append(f"/{path}")
            if name in PACKAGE_MANAGERS:
                managers.append(f"/{path}")
            if name in COMPILERS or name.startswith(("gcc-", "x86_64-linux-gnu-gcc", "clang-")):
                compilers.append(f"/{path}")
        if name == "pip" and member.isdir() and "site-packages" in path.parts:
            pip_module = True
        if member.isfile() and member.mode & (stat.S_ISUID | stat.S_ISGID):
            setuid.append(f"/{path}")
        is_sticky_dir = member.isdir() and member.mode & stat.S_ISVTX
        # Device nodes under /dev are the engine's, not the image's.
        if (member.mode & stat.S_IWOTH and (member.isfile() or member.isdir())
                and not is_sticky_dir and path.parts[:1] != ("dev",)):
            writable.append(f"/{path}")
        if member.isfile() and name != "lock":
            caches.update(f"/{cache}" for cache in CACHE_DIRS if str(path).startswith(cache))
    return AttackSurface(
        image=image,
        user=user,
        runs_as_root=user.split(":")[0] in ("", "0", "root"),
        shells=tuple(sorted(shells)),
        package_managers=tuple(sorted(managers)),
        compilers=tuple(sorted(compilers)),
        pip_module=pip_module,
        setuid_files=tuple(sorted(setuid)),
        world_writable=tuple(sorted(writable)),
        package_caches=tuple(sorted(caches)),
        exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
    )


class ChunkStream(io.RawIOBase):
    """A file-like view of the SDK's chunk iterator, for tarfile's streaming mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = iter(chunks)
        self.pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            chunk = next(self.chunks, b"")
            if not chunk:
                return 0
            self.pending = memoryview(chunk)
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def read_file(client: docker.DockerClient, image: str, path: str) -> bytes | None:
    """One file's bytes from an image, or None when it isn't there."""
    with created_container(client, image) as container:
        try:
            chunks, _ = container.get_archive(path)
        except docker.errors.NotFound:
            return None
        stream = io.BufferedReader(ChunkStream(chunks))
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                handle = tar.extractfile(member)
                return handle.read() if handle else None
    return None


def python_version(client: docker.DockerClient, image: str) -> str:
    """The Python version the image's venv was made with (`3.12.3`), from pyvenv.cfg."""
    config = read_file(client, image, "/opt/venv/pyvenv.cfg") or b""
    for line in config.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return value.strip()
    return ""


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
