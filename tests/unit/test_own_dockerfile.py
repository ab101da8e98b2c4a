"""Reading a service's own Dockerfile ("your image today") for the images it is built FROM."""

from __future__ import annotations

import pytest

from builder.compare.own_dockerfile import UnreadableDockerfileError, base_refs


def test_external_bases_in_order_without_stages_or_scratch() -> None:
    text = ("# syntax=docker/dockerfile:1\n"
            "ARG PY=3.12\n"
            "FROM --platform=linux/amd64 python:${PY}-slim AS build\n"
            "RUN pip install \\\n    -r requirements.txt\n"
            "FROM build AS test\n"
            "FROM scratch AS empty\n"
            "FROM ubuntu:24.04\n"
            "COPY --from=build /app /app\n")
    assert base_refs(text) == ("python:3.12-slim", "ubuntu:24.04")


def test_defaults_in_the_reference_itself() -> None:
    assert base_refs("ARG TAG\nFROM debian:${TAG:-12}\n") == ("debian:12",)


@pytest.mark.parametrize(("text", "message"), [
    ("FROM python:$VERSION\n", "FROM python:$VERSION uses $VERSION, which has no default"),
    ("RUN echo hi\n", "it has no FROM instruction"),
])
def test_what_cannot_be_told_raises(text: str, message: str) -> None:
    with pytest.raises(UnreadableDockerfileError, match=message.replace("$", r"\$")):
        base_refs(text)
