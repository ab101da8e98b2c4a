"""Shared ground: the one user-facing error type, atomic files, the clock, YAML with line numbers."""
