"""An image's files without running it: the engine creates a container, exports it as a tar
stream and removes it. Works on images with no shell (distroless)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors

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
