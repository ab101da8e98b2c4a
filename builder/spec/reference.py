"""Docker's image reference grammar (distribution/reference), rule by rule, so a refusal can say
which rule a name breaks rather than only that it is invalid.

    path-component := [a-z0-9]+ (separator [a-z0-9]+)*     separator := [_.] | __ | -+
    tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest         := sha256:[a-f0-9]{64}
"""

from __future__ import annotations

import re

_ALNUM = "[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
PATH_COMPONENT = re.compile(f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_NAME = f"(?:{_DOMAIN}/)?{PATH_COMPONENT.pattern}(?:/{PATH_COMPONENT.pattern})*"
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
# name[:tag][@digest]; the domain is what precedes the first '/' when it has a '.' or ':'.
IMAGE_REFERENCE = re.compile(f"{_NAME}(?::{TAG.pattern})?(?:@{DIGEST.pattern})?")
# What `render --pin` writes: a registry digest reference, or a local image id.
PINNED_REFERENCE = re.compile(f"(?:{_NAME}@)?{DIGEST.pattern}")
MAX_NAME_LENGTH = 63  # imagewright's limit: service names also name folders and containers


def repository_name_problem(name: str) -> str | None:
    """Why `name` can't be a one-component Docker repository name, or None when it can."""
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    if name != name.lower():
        return "has upper-case letters; Docker repository names are lower-case"
    if stray := re.search(r"[^a-z0-9._-]", name):
        return (f"has {stray[0]!r}; a Docker repository name has only lower-case letters, digits "
                "and the separators '.', '_', '__' and '-'")
    if not re.match("[a-z0-9]", name) or not re.search("[a-z0-9]$", name):
        return "must start and end with a lower-case letter or digit (Docker's reference grammar)"
    if not PATH_COMPONENT.fullmatch(name):
        return ("has separators side by side; Docker allows one '.', one '_', '__' or a run of "
                "'-' between letters and digits")
    return None


def tag_problem(tag: str) -> str | None:
    """Why `tag` can't be a Docker tag, or None when it can."""
    if not tag or len(tag) > 128:
        return "a Docker tag has 1 to 128 characters"
    if not re.match("[A-Za-z0-9_]", tag):
        return "a Docker tag starts with a letter, a digit or '_'"
    if stray := re.search(r"[^A-Za-z0-9_.-]", tag):
        return f"a Docker tag has only letters, digits, '_', '.' and '-', not {stray[0]!r}"
    return None
