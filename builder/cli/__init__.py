"""Arguments, progress and exit codes: the only place that prints or exits."""

from builder.cli.main import main

__all__ = ["main"]
