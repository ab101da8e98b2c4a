"""Timestamps as imagewright writes them everywhere: ISO 8601, UTC, to the second."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
