"""The one way to reach the Docker engine, with a readable error when it isn't there."""

from __future__ import annotations

import docker
import docker.errors
from docker.models.images import Image

from builder.core.errors import FaultError


def connect() -> docker.DockerClient:
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
    return client


def local_image(client: docker.DockerClient, ref: str) -> Image | None:
    """The image `ref` names on this machine, or None: never a pull."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
