"""The build context: exactly the files a build may see, as a tar for the engine."""

from __future__ import annotations

import hashlib
import io
import os
import re
import ssl
import tarfile
from pathlib import Path, PurePosixPath

from builder.build.dependencies import derived_requirements
from builder.core.errors import UserError
from builder.core.yamlfile import read_limited
from builder.engine.client import dockerignore_matches
from builder.naming import BUILD_CA_ENV
from builder.project import Project
from builder.spec.service import ServiceSpec

# imagewright's own names in a context: the Dockerfile it sends and the files it adds under
# `.imagewright/` (CA bundle, runtime files). Nothing from the service folder may take one of them,
# whatever the .dockerignore says: the engine's matching (docker-py) always keeps a top-level Dockerfile and
# .dockerignore, and a service's `.imagewright/` would add to or shadow the tool's files.
TOOL_DIR = ".imagewright"
_TOOL_FILES = ("Dockerfile", ".dockerignore")
MAX_BUNDLE_BYTES = 4 * 1024 * 1024  # a system bundle is ~200 KiB
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


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
            return certificates_only(Path(candidate))
    import certifi  # requests' bundle: the last resort on a machine without a system store

    return certificates_only(Path(certifi.where()))


def certificates_only(path: Path) -> bytes:
    """The certificate blocks of a PEM file, nothing else: comments, text dumps and anything
    that isn't a certificate stay out of the build context. A private key is refused outright:
    whoever pointed us at it meant the CA's certificate, and the key must not travel."""
    raw = read_limited(path, str(path), MAX_BUNDLE_BYTES)
    blocks = list(_PEM_BLOCK.finditer(raw))
    if keys := [m for m in blocks if m[1].endswith(b"PRIVATE KEY")]:
        raise UserError(f"{path}: holds a private key ({keys[0][1].decode()}); the build CA input "
                        f"takes CA certificates only: point {BUILD_CA_ENV} at the certificate")
    certificates = b"".join(m[0] + b"\n" for m in blocks if m[1] == b"CERTIFICATE")
    if not certificates:
        raise UserError(f"{path}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it; "
                        f"point {BUILD_CA_ENV} at a CA bundle")
    try:  # OpenSSL reads every block, so a damaged one fails here rather than in pip
        ssl.create_default_context(cadata=certificates.decode("ascii"))
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: a certificate in it can't be read ({error})") from None
    return certificates


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
                  extra_files: dict[str, bytes], *, service_dir: str = "") -> io.BytesIO:
    """The service folder (minus .dockerignore matches) + the Dockerfile + imagewright's files.

    `service_dir` puts the service's files under that folder (`images/<service>`), as the project
    holds them: the layout BuildKit's bake sees when it builds from the checkout."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for relative in context_paths(service.directory, dockerignore):
            tar.add(service.directory / relative, arcname=_under(service_dir, relative),
                    recursive=False)
        for name, data in {"Dockerfile": dockerfile.encode(), **extra_files}.items():
            _add_bytes(tar, name, data)
    buffer.seek(0)
    return buffer


def _under(folder: str, relative: str) -> str:
    return f"{folder}/{relative}" if folder else relative


def service_files(context: io.BytesIO, service_dir: str) -> dict[str, bytes]:
    """The service's regular files in a context tar, by their path in the service folder
    (imagewright's own files left out: the service cannot change them)."""
    files: dict[str, bytes] = {}
    prefix = f"{service_dir}/" if service_dir else ""
    with tarfile.open(fileobj=context, mode="r:") as tar:
        for member in tar:
            # Regular files only: a symlink is sent as a link, never with its target's content.
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            relative = member.name.removeprefix(prefix)
            if is_tool_path(relative) or (source := tar.extractfile(member)) is None:
                continue
            files[relative] = source.read()
    context.seek(0)
    return files


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
    # BuildKit's context transfer skips a file whose size and mtime it has seen before: a generated
    # file (derived requirements, the CA bundle) changed by one character kept its old content.
    # An mtime derived from the content changes whenever the content does, and only then, so
    # unchanged files still transfer nothing and no cache key depends on the clock.
    info.mtime = int.from_bytes(hashlib.sha256(data).digest()[:4], "big") & 0x7FFFFFFF
    tar.addfile(info, io.BytesIO(data))


def dependency_files(service: ServiceSpec, project: Project) -> dict[str, bytes]:
    """The requirements derived from a pyproject.toml or its lock, where the venv stage copies them
    from (`layout.context.requirements`); nothing when the service's own file is used."""
    text = derived_requirements(service)
    return {} if text is None else {project.layout.context.requirements: text.encode()}


def runtime_files(project: Project) -> dict[str, bytes]:
    files = project.templates_dir / "files"
    return {f"{project.layout.context.runtime}/{path.relative_to(files).as_posix()}": path.read_bytes()
            for path in sorted(files.rglob("*"))
            if path.is_file() and "__pycache__" not in path.relative_to(files).parts}
