"""The one way to reach the Docker engine, with a readable error when it isn't there.

`Engine` is what every other stage holds: it speaks in image references, ids and plain dicts, so
the Docker SDK (and its exceptions) stay inside this package.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.utils.build import exclude_paths

from builder.core.errors import FaultError


class EngineError(FaultError):
    """The engine refused a request (a failed build step, a missing image, …)."""


@dataclass(frozen=True)
class LocalImage:
    """An image present on this machine, as `docker image inspect` describes it."""

    id: str
    labels: dict[str, str]
    repo_digests: tuple[str, ...]
    attrs: dict[str, Any]

    @property
    def size(self) -> int:
        return int(self.attrs.get("Size") or 0)


class Engine:
    def __init__(self, sdk: docker.DockerClient) -> None:
        self.sdk = sdk  # only modules of builder.engine touch the SDK

    # ---- images ---------------------------------------------------------------------------------

    def image(self, ref: str) -> LocalImage | None:
        """The image `ref` names on this machine, or None: never a pull."""
        try:
            attrs = self.sdk.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as error:
            if error.status_code in (400, 404):  # a reference the engine cannot even parse
                return None
            raise EngineError(f"cannot inspect {ref}: {error.explanation or error}") from None
        config = attrs.get("Config") or {}
        return LocalImage(str(attrs["Id"]), dict(config.get("Labels") or {}),
                          tuple(attrs.get("RepoDigests") or ()), attrs)

    def inspect_image(self, ref: str) -> dict[str, Any]:
        image = self.image(ref)
        if image is None:
            raise EngineError(f"image {ref} does not exist on this machine")
        return image.attrs

    def history(self, ref: str) -> list[dict[str, Any]]:
        return list(self.sdk.api.history(ref))

    def layer_ids(self, ref: str) -> list[str]:
        """The image's layer diff ids, oldest first ([] when the image is missing)."""
        image = self.image(ref)
        return list((image.attrs.get("RootFS") or {}).get("Layers") or []) if image else []

    def tag(self, image_id: str, tags: Iterable[str]) -> None:
        for tag in tags:
            repository, _, tag_name = tag.rpartition(":")
            self.sdk.api.tag(image_id, repository, tag_name)

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Remove an image if it is there; a missing or in-use image is left alone."""
        with suppress(docker.errors.APIError):
            self.sdk.api.remove_image(ref, force=force)

    def images_named(self, repository: str) -> list[str]:
        return [str(row["Id"]) for row in self.sdk.api.images(name=repository)]

    def pull(self, ref: str) -> bool:
        """Try a registry once; False when it can't be pulled (offline, unknown, refused)."""
        repository, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "")
        try:
            self.sdk.images.pull(repository, tag=tag or "latest")
        except docker.errors.APIError:
            return False
        return True

    def import_rootfs(self, tarball: str, ref: str, changes: list[str]) -> None:
        repository, _, tag = ref.rpartition(":")
        self.sdk.api.import_image_from_file(tarball, repository=repository, tag=tag,
                                            changes=changes)

    def save(self, ref: str, chunk_size: int) -> Iterator[bytes]:
        """`docker save` of one image, streamed."""
        return iter(self.sdk.api.get_image(ref, chunk_size=chunk_size))

    def info(self) -> dict[str, Any]:
        return dict(self.sdk.info())

    # ---- builds ---------------------------------------------------------------------------------

    def legacy_build(self, context: io.BytesIO, build_args: dict[str, str],
                     labels: dict[str, str] | None, *, nocache: bool) -> Iterator[dict[str, Any]]:
        """The engine's classic builder on a context tar: its JSON progress messages, in order.
        A refusal before or during the build raises EngineError."""
        try:
            yield from self.sdk.api.build(
                fileobj=context, custom_context=True, rm=True, forcerm=True, decode=True,
                buildargs=build_args, labels=labels, pull=False, nocache=nocache,
            )
        except docker.errors.APIError as error:
            raise EngineError(error.explanation or str(error)) from None


def dockerignore_matches(directory: Path, patterns: list[str]) -> set[str]:
    """The paths under `directory` (relative, POSIX) that a build context keeps once the
    .dockerignore `patterns` are applied: the engine's own matching rules, as docker-py implements
    them."""
    return set(exclude_paths(str(directory), patterns))


def connect() -> Engine:
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as error:
        reason = str(error)
        if "Permission denied" in reason:
            raise FaultError("cannot reach the Docker daemon: permission denied on its socket "
                             "(run as root or join the docker group)") from None
        raise FaultError("cannot reach the Docker daemon: is dockerd running? "
                         f"({reason.splitlines()[0][:160]})") from None
    return Engine(client)
