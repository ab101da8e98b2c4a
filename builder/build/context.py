"""The build context: exactly the files a build may see, as a tar for the engine."""

from __future__ import annotations

import io
import os
import ssl
import tarfile
from pathlib import Path, PurePosixPath

from builder.build.dependencies import derived_requirements
from builder.engine.client import dockerignore_matches
from builder.project import Project
from builder.spec.service import ServiceSpec

BUILD_CA_ENV = "IMAGEWRIGHT_BUILD_CA"
# imagewright's own names in a context: the Dockerfile it sends and the files it adds under
# `.imagewright/` (CA bundle, runtime files). Nothing from the service folder may take one of them,
# whatever the .dockerignore says: the engine's matching (docker-py) always keeps a top-level Dockerfile and
# .dockerignore, and a service's `.imagewright/` would add to or shadow the tool's files.
TOOL_DIR = ".imagewright"
_TOOL_FILES = ("Dockerfile", ".dockerignore")


def build_trust_bundle() -> bytes:
    """The CA bundle pip uses inside build stages: the build machine's own trust.

    Behind a TLS-intercepting proxy this is what makes PyPI reachable; it is only ever copied into
    the venv stage, never into a final image.
    """
    candidates = [os.environ.get(BUILD_CA_ENV), os.environ.get("PIP_CERT"),
                  os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().cafile,
                  "/etc/ssl/certs/ca-certificates.crt"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    import certifi  # requests' bundle: the last resort on a machine without a system store

    return Path(certifi.where()).read_bytes()


def is_tool_path(relative: str) -> bool:
    """Whether a context path is imagewright's to fill, never the service folder's."""
    parts = PurePosixPath(relative).parts
    return TOOL_DIR in parts or (len(parts) == 1 and parts[0] in _TOOL_FILES)


def context_paths(directory: Path, dockerignore: str) -> list[str]:
    """What of `directory` a build context holds: paths relative to it, .dockerignore applied."""
    patterns = [line.strip() for line in dockerignore.splitlines()
                if line.strip() and not line.startswith("#")]
    return sorted(relative for relative in dockerignore_matches(directory, patterns)
                  if not is_tool_path(relative))


def build_context(service: ServiceSpec, dockerignore: str, dockerfile: str,
                  extra_files: dict[str, bytes]) -> io.BytesIO:
    """The service folder (minus .dockerignore matches) + the Dockerfile + imagewright's files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for relative in context_paths(service.directory, dockerignore):
            tar.add(service.directory / relative, arcname=relative, recursive=False)
        for name, data in {"Dockerfile": dockerfile.encode(), **extra_files}.items():
            _add_bytes(tar, name, data)
    buffer.seek(0)
    return buffer


def dockerfile_only(dockerfile: str) -> io.BytesIO:
    """A build context of one file, for Dockerfiles that copy nothing from the project."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile.encode())
    buffer.seek(0)
    return buffer


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def dependency_files(service: ServiceSpec, project: Project) -> dict[str, bytes]:
    """The requirements derived from a pyproject.toml or its lock, where the venv stage copies them
    from (`layout.context.requirements`); nothing when the service's own file is used."""
    text = derived_requirements(service)
    return {} if text is None else {project.layout.context.requirements: text.encode()}


def runtime_files(project: Project) -> dict[str, bytes]:
    files = project.templates_dir / "files"
    return {f"{project.layout.context.runtime}/{path.name}": path.read_bytes()
            for path in sorted(files.iterdir()) if path.is_file()}
