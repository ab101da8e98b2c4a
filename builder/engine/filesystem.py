"""An image's files without running it: the engine creates a container, exports it as a tar
stream and removes it. Works on images with no shell (distroless)."""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import docker.errors
import docker.utils
from docker.models.containers import Container

from builder.engine.client import Engine
from builder.engine.containers import created_container


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


@contextmanager
def _exported(engine: Engine, image: str) -> Iterator[tarfile.TarFile]:
    """The image's filesystem as a tar read while the engine streams it (nothing kept on disk)."""
    with created_container(engine, image) as container:
        stream = io.BufferedReader(ChunkStream(container.export(chunk_size=1 << 20)), 1 << 20)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            yield tar


def exported_files(engine: Engine, image: str) -> Iterator[tarfile.TarInfo]:
    """Every entry of the image's filesystem, streamed (no file contents kept)."""
    with _exported(engine, image) as tar:
        yield from tar


def files_containing(engine: Engine, image: str, needles: list[bytes],
                     max_size: int = 8 << 20) -> list[str]:
    """Paths of regular files (up to `max_size`) whose bytes contain any of `needles`."""
    found: list[str] = []
    with _exported(engine, image) as tar:
        for member in tar:
            if member.isfile() and 0 < member.size <= max_size:
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                if any(needle in data for needle in needles):
                    found.append("/" + member.name)
    return found


def read_file(engine: Engine, image: str, path: str) -> bytes | None:
    """One file's bytes from an image, or None when it isn't there."""
    with created_container(engine, image) as container:
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


# Go's os.FileMode bits, as the engine reports a path's mode.
_MODE_DIR = 1 << 31
_MODE_SYMLINK = 1 << 27
_MAX_LINKS = 16


def find_executable(engine: Engine, image: str, name: str, search_path: Sequence[str]
                    ) -> str | None:
    """Where exec would find `name` in the image (an absolute path, or each folder of
    `search_path` in order), following symlinks; None when it is not there or not executable.
    Reads the image's filesystem through the engine: no shell in the image is needed."""
    candidates = [name] if "/" in name else [posixpath.join(folder, name)
                                              for folder in search_path if folder]
    with created_container(engine, image) as container:
        for candidate in candidates:
            if _executable(container, candidate):
                return candidate
    return None


def _executable(container: Container, path: str) -> bool:
    for _ in range(_MAX_LINKS):
        stat = _stat(container, path)
        if stat is None:
            return False
        mode, target = int(stat.get("mode") or 0), str(stat.get("linkTarget") or "")
        if not mode & _MODE_SYMLINK:
            return not mode & _MODE_DIR and bool(mode & 0o111)
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return False  # a symlink loop


def _stat(container: Container, path: str) -> dict[str, Any] | None:
    """The engine's stat of one path in a container (`HEAD …/archive`), without its contents."""
    api = container.client.api
    response = api.head(api._url("/containers/{0}/archive", container.id), params={"path": path})
    if response.status_code == 404:
        return None
    api._raise_for_status(response)
    header = response.headers.get("X-Docker-Container-Path-Stat")
    return dict(docker.utils.decode_json_header(header)) if header else None
