"""An image's layers as `docker save` gives them: size as pushed, the instruction behind each, waste.

One streamed pass over the save archive; nothing is written to disk. Each layer tar is gzip'd as it
streams past (in a thread of its own: zlib releases the GIL, so compression overlaps the tar parsing)
and its file list is kept for the waste computation, which is pure (`measure_waste`).
"""

from __future__ import annotations

import bisect
import io
import json
import queue
import tarfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import docker

from builder.surface import _StreamReader

# `docker push` gzips each layer tar with Go's default level (6); zlib's level 6 lands within ~1%.
GZIP_LEVEL = 6
_CHUNK = 1 << 20
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class LayerContent:
    """What one layer tar holds, for the waste computation: files it writes and paths it removes."""

    files: tuple[tuple[str, int], ...]  # (path, bytes) of every non-directory entry
    removed: tuple[str, ...] = ()  # `.wh.<name>` whiteouts: the path and everything under it
    opaque: tuple[str, ...] = ()  # directories whose lower-layer contents are hidden


@dataclass(frozen=True)
class Layer:
    index: int
    diff_id: str
    instruction: str  # the Dockerfile instruction that made it, from the image's history
    size_bytes: int  # the layer tar, uncompressed
    compressed_bytes: int  # the layer tar, gzip'd as `docker push` sends it
    files: int


@dataclass(frozen=True)
class WastedPath:
    path: str
    bytes: int  # every copy any layer holds (dive's "cumulative size")
    layers: int  # how many layers wrote or removed it


@dataclass(frozen=True)
class Waste:
    bytes: int
    efficiency: float  # dive's score: 1.0 when no byte is stored twice or stored then removed
    top: tuple[WastedPath, ...] = field(default=())


@dataclass(frozen=True)
class LayerReport:
    image: str
    layers: tuple[Layer, ...]
    waste: Waste

    @property
    def compressed_bytes(self) -> int:
        return sum(layer.compressed_bytes for layer in self.layers)

    def largest(self, count: int = 5) -> tuple[Layer, ...]:
        return tuple(sorted(self.layers, key=lambda layer: layer.size_bytes, reverse=True)[:count])


def analyse_layers(client: docker.DockerClient, image: str) -> LayerReport:
    """Stream `docker save` of `image` once: per-layer sizes (raw and gzip'd), instructions, waste."""
    raw = io.BufferedReader(_StreamReader(client.api.get_image(image, chunk_size=_CHUNK)), _CHUNK)
    seen: dict[str, tuple[int, int, LayerContent]] = {}  # "<dir>/layer.tar" → size, gzip, content
    links: dict[str, str] = {}
    documents: dict[str, Any] = {}
    with tarfile.open(fileobj=raw, mode="r|") as archive:
        for member in archive:
            if member.name.endswith("/layer.tar") and member.issym():
                # An identical layer saved twice is stored once and linked.
                links[member.name] = str(PurePosixPath(member.name).parent / member.linkname)
            elif member.name.endswith("/layer.tar") and member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    seen[member.name] = _read_layer(handle)
            elif member.name.endswith(".json") and member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    documents[member.name] = json.loads(handle.read())
    manifest = documents["manifest.json"][0]
    config = documents[manifest["Config"]]
    paths = [str(PurePosixPath(links.get(name, name))) for name in manifest["Layers"]]
    instructions = layer_instructions(config.get("history") or [])
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers: list[Layer] = []
    contents: list[LayerContent] = []
    for index, name in enumerate(paths):
        size, compressed, content = seen[_resolve(name, links)]
        contents.append(content)
        layers.append(Layer(index, diff_ids[index] if index < len(diff_ids) else "",
                            instructions[index] if index < len(instructions) else "",
                            size, compressed, len(content.files)))
    return LayerReport(image, tuple(layers), measure_waste(contents))


def _resolve(name: str, links: dict[str, str]) -> str:
    while name in links:
        name = links[name]
    return name


def layer_instructions(history: Sequence[dict[str, Any]]) -> list[str]:
    """The instruction behind each non-empty layer, in layer order (empty layers are ENV, CMD, …)."""
    return [readable_instruction(str(entry.get("created_by") or ""), str(entry.get("comment") or ""))
            for entry in history if not entry.get("empty_layer")]


def readable_instruction(created_by: str, comment: str = "") -> str:
    """`/bin/sh -c #(nop) COPY …` → `COPY …`; `/bin/sh -c apt-get …` → `RUN apt-get …`."""
    text = " ".join(created_by.split())
    if not text:
        return f"(base: {comment})" if comment else "(base)"
    for prefix in ("/bin/sh -c #(nop) ", "|"):
        if text.startswith(prefix):
            return text.removeprefix(prefix).strip()
    if text.startswith("/bin/sh -c "):
        return "RUN " + text.removeprefix("/bin/sh -c ")
    return text


# ---- one layer tar: gzip'd size and file list, in one pass ----------------------------------------

class _Tee(io.RawIOBase):
    """Reads from `source` and hands every chunk to `sink` as well."""

    def __init__(self, source: io.BufferedIOBase | Any, sink: queue.Queue[bytes | None]) -> None:
        self.source = source
        self.sink = sink
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.source.read(len(buffer))
        if not data:
            return 0
        buffer[:len(data)] = data
        self.total += len(data)
        self.sink.put(bytes(data))
        return len(data)


def _gzip_size(chunks: queue.Queue[bytes | None], result: list[int]) -> None:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    size = 0
    while (chunk := chunks.get()) is not None:
        size += len(compressor.compress(chunk))
    result.append(size + len(compressor.flush()))


def _read_layer(handle: io.BufferedIOBase | Any) -> tuple[int, int, LayerContent]:
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=32)
    result: list[int] = []
    worker = threading.Thread(target=_gzip_size, args=(chunks, result), daemon=True)
    worker.start()
    tee = _Tee(handle, chunks)
    try:
        content = _layer_content(io.BufferedReader(tee, _CHUNK))
        while tee.read(_CHUNK):  # the tar's end-of-archive padding is pushed too
            pass
    finally:
        chunks.put(None)
        worker.join()
    return tee.total, result[0] if result else 0, content


def _layer_content(stream: io.BufferedReader) -> LayerContent:
    files: list[tuple[str, int]] = []
    removed: list[str] = []
    opaque: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./").strip("/")
            path = PurePosixPath(name or ".")
            if path.name == _OPAQUE:
                opaque.append(str(path.parent))
            elif path.name.startswith(_WHITEOUT):
                removed.append(str(path.parent / path.name.removeprefix(_WHITEOUT)))
            elif not member.isdir():
                files.append((str(path), member.size if member.isfile() else 0))
    return LayerContent(tuple(files), tuple(removed), tuple(opaque))


# ---- waste, the way dive scores it ---------------------------------------------------------------

def measure_waste(layers: Iterable[LayerContent], top: int = 10) -> Waste:
    """Bytes stored in more than one layer, or stored and then removed.

    Like dive: a path written (or removed) by two or more layers counts with every copy it ever had
    (its cumulative size), and efficiency = Σ smallest copy / Σ cumulative size. Unlike dive, a file
    removed together with its directory (`rm -rf dir` in a later layer) counts as well.
    """
    live: dict[str, int] = {}
    cumulative: dict[str, int] = {}
    smallest: dict[str, int] = {}
    touched: dict[str, int] = {}

    def touch(path: str, size: int) -> None:
        cumulative[path] = cumulative.get(path, 0) + size
        smallest[path] = min(smallest.get(path, size), size)
        touched[path] = touched.get(path, 0) + 1

    for layer in layers:
        # Whiteouts hide what lower layers hold, so they apply before this layer's own files.
        for path in _hidden(live, layer):
            del live[path]
            touch(path, 0)
        for path, size in layer.files:
            live[path] = size
            touch(path, size)
    wasted = {path: size for path, size in cumulative.items() if touched[path] > 1}
    total = sum(cumulative.values())
    efficiency = sum(smallest.values()) / total if total else 1.0
    ranked = sorted(wasted.items(), key=lambda item: item[1], reverse=True)[:top]
    return Waste(sum(wasted.values()), round(efficiency, 4),
                 tuple(WastedPath("/" + path, size, touched[path]) for path, size in ranked))


def _hidden(live: dict[str, int], layer: LayerContent) -> Iterator[str]:
    if not (layer.removed or layer.opaque):
        return
    ordered = sorted(live)
    hidden: set[str] = set()
    for path in layer.removed:
        if path in live:
            hidden.add(path)
        hidden.update(_under(ordered, path))
    for directory in layer.opaque:
        hidden.update(_under(ordered, directory))
    yield from sorted(hidden)


def _under(ordered: list[str], directory: str) -> list[str]:
    prefix = "" if directory in ("", ".") else directory + "/"
    start = bisect.bisect_left(ordered, prefix)
    end = start
    while end < len(ordered) and ordered[end].startswith(prefix):
        end += 1
    return ordered[start:end]
