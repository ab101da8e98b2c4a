"""The one error type a user sees: a single line, exit code 2 for bad input."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the CLI prints it as one line, no traceback."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecError(UserError):
    """`image.yaml` (or another input file) is invalid at a given key."""

    def __init__(self, file: str, key: str, message: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line else file
        keypart = f" {key}:" if key else ""
        super().__init__(f"{where}:{keypart} {message}")
        self.file = file
        self.key = key
        self.line = line


class FaultError(UserError):
    """Something outside the input failed (daemon, build step, container); exit code 1."""

    exit_code = 1
