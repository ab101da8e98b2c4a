"""Read a small YAML file safely: no aliases, no duplicate keys, bounded size and nesting, line
numbers kept per key path."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from builder.core.errors import SpecError

MAX_BYTES = 256 * 1024
# Far deeper than any spec needs (policy.prod.fail_on_severity[0] is 4), far below Python's
# recursion limit, which a file of `[[[[…` would otherwise hit with a traceback.
MAX_DEPTH = 20
KeyPath = tuple[str | int, ...]


def format_key(path: KeyPath) -> str:
    """`dev.command[0]`; a key with unusual characters is quoted so the message stays one line."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = part if re.fullmatch(r"[\w-]+", part) else repr(part)
        text += f".{name}" if text else name
    return text


@dataclass(frozen=True)
class YamlDocument:
    """Plain data plus where each key came from, so errors can name a line."""

    file: str
    data: Any
    lines: dict[KeyPath, int]
    # The text of each unquoted scalar that YAML read as something other than a string
    # (`1.10` → 1.1, `0755` → 493, `12:30` → 750), so a string field can keep what was written.
    written: dict[KeyPath, str] = field(default_factory=dict)

    def error(self, path: KeyPath, message: str) -> SpecError:
        line = None
        for depth in range(len(path), -1, -1):
            line = self.lines.get(path[:depth])
            if line is not None:
                break
        return SpecError(self.file, format_key(path), message, line)


class _NoAliasLoader(yaml.SafeLoader):
    """Anchors and aliases are refused: a spec has no use for them and they enable YAML bombs.
    Nesting is bounded for the same reason."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                "while reading", None, "YAML aliases are not allowed", event.start_mark
            )
        if self.depth >= MAX_DEPTH:
            raise yaml.MarkedYAMLError("while reading", None,
                                       f"nested deeper than {MAX_DEPTH} levels",
                                       self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def read_limited(path: Path, display: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is one SpecError.

    The size is checked before reading, and the read is bounded too: a FIFO, a device or a file
    that grows meanwhile can't make us read (or wait) forever.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(display, "", "is not a regular file")
        if info.st_size > limit:
            raise SpecError(display, "", f"file is larger than {limit // 1024} KiB")
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(descriptor, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise SpecError(display, "", f"cannot read file ({exc.strerror or exc})") from None
    if len(raw) > limit:
        raise SpecError(display, "", f"file is larger than {limit // 1024} KiB")
    return raw


def load_yaml(path: Path, display: str) -> YamlDocument:
    raw = read_limited(path, display)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(display, "", f"not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise SpecError(display, "", "file is empty")
    try:
        # The reader checks characters as soon as the loader is made, so that is inside the try.
        loader = _NoAliasLoader(text)
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise SpecError(display, "", f"invalid YAML: {exc.problem}", line) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise SpecError(display, "", f"invalid YAML: character {character!r} is not allowed",
                        line) from None
    except yaml.YAMLError as exc:
        raise SpecError(display, "", f"invalid YAML: {str(exc).splitlines()[0]}") from None
    if node is None:
        raise SpecError(display, "", "file is empty")
    lines: dict[KeyPath, int] = {}
    written: dict[KeyPath, str] = {}
    try:
        data = _to_python(node, (), lines, display, loader, written)
    finally:
        loader.dispose()
    return YamlDocument(display, data, lines, written)


def _to_python(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: str, loader: yaml.SafeLoader,
    written: dict[KeyPath, str] | None = None,
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _to_python(key_node, path, {}, file, loader)
            if not isinstance(key, str):
                raise SpecError(file, format_key(path), f"key {key!r} is not a string",
                                key_node.start_mark.line + 1)
            if key in result:
                raise SpecError(file, format_key((*path, key)), "duplicate key",
                                key_node.start_mark.line + 1)
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, (*path, key), lines, file, loader, written)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(item, (*path, index), lines, file, loader, written)
            for index, item in enumerate(node.value)
        ]
    try:
        value = loader.construct_object(node, deep=True)
        if written is not None and node.style is None and not isinstance(value, str):
            written[path] = node.value
        return value
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date such as 2025-13-01
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(file, format_key(path), f"invalid value: {reason}",
                        node.start_mark.line + 1) from None
