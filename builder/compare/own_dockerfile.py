"""A service's own Dockerfile ("your image today"), read without building it: which images it is
built FROM. Parsed by moby's own Dockerfile parser (the `dockerfile` package), so continuation
lines, comments and parser directives mean what they mean to the engine."""

from __future__ import annotations

import re

import dockerfile

# `$NAME`, `${NAME}`, `${NAME:-default}`: what the engine substitutes in FROM from global ARGs.
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::?-([^}]*))?\}|(\w+))")


class UnreadableDockerfileError(ValueError):
    pass


def base_refs(text: str) -> tuple[str, ...]:
    """The images a Dockerfile's stages start FROM, in order, without `scratch` and without
    references to its own earlier stages. Global ARG defaults are substituted as the engine does;
    a reference that still holds a variable cannot be told and raises."""
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as error:
        raise UnreadableDockerfileError(f"cannot parse it: {error}") from None
    arguments: dict[str, str] = {}
    stages: set[str] = set()
    refs: list[str] = []
    seen_from = False
    for command in commands:
        if command.cmd.upper() == "ARG" and not seen_from:
            for declaration in command.value:
                name, _, default = declaration.partition("=")
                arguments[name] = default.strip("\"'")
        if command.cmd.upper() != "FROM" or not command.value:
            continue
        seen_from = True
        ref = _substitute(command.value[0], arguments, command.start_line)
        if len(command.value) >= 3 and command.value[1].upper() == "AS":
            stages.add(command.value[2].lower())
        if ref.lower() in stages or ref.lower() == "scratch":
            continue
        refs.append(ref)
    if not seen_from:
        raise UnreadableDockerfileError("it has no FROM instruction")
    return tuple(dict.fromkeys(refs))


def _substitute(ref: str, arguments: dict[str, str], line: int) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if arguments.get(name):
            return arguments[name]
        if match.group(2) is not None:
            return match.group(2)
        raise UnreadableDockerfileError(f"line {line}: FROM {ref} uses ${name}, which has no "
                                        "default value")

    return _VARIABLE.sub(value, ref)
