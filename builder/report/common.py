"""What every writer shares: Markdown cell escaping and atomic JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.core.files import atomic_write


def markdown_cell(text: str) -> str:
    """Safe inside a Markdown table cell or list item: no pipes, no line breaks."""
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
