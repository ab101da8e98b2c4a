"""Write a small image as a `docker save` archive, without an engine, for `trivy image --input`.

Trivy reads such an archive as it reads an image from the engine (OS, packages, layers, config), so
tests of what Trivy reports, and of how its reports are parsed, need no Docker daemon.
Format reference: the Docker image specification v1.2 (`manifest.json` + config + layer tars).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path


def ubuntu_release_files() -> dict[str, bytes]:
    """What tells Trivy an image is Ubuntu 24.04 (its Ubuntu analyzer reads lsb-release)."""
    return {
        "/etc/os-release": b'PRETTY_NAME="Ubuntu 24.04 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
                           b"VERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n",
        "/etc/lsb-release": b"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=24.04\nDISTRIB_CODENAME=noble\n"
                            b'DISTRIB_DESCRIPTION="Ubuntu 24.04 LTS"\n',
    }


def dpkg_status(packages: Sequence[tuple[str, str, str]]) -> bytes:
    """/var/lib/dpkg/status for installed (package, source, version) triples."""
    stanzas = [
        f"Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: libs\n"
        f"Architecture: amd64\nSource: {source}\nVersion: {version}\n"
        f"Description: {name} (imagewright test fixture)\n"
        for name, source, version in packages
    ]
    return "\n".join(stanzas).encode()


def python_metadata(name: str, version: str) -> bytes:
    """A `*.dist-info/METADATA`: Trivy's python-pkg analyzer needs nothing else."""
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: fixture\n".encode()


def _layer(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in directories:
                    directories.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(files[path]), 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_image_archive(path: Path, tag: str, layers: Sequence[Mapping[str, bytes]],
                        *, user: str = "65532", env: Sequence[str] = ()) -> str:
    """Write `layers` (each: absolute path → content) as an image archive; return its image id."""
    blobs = [_layer(files) for files in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": user, "Env": list(env), "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_digest(blob)}" for blob in blobs]},
        "history": [{"created_by": f"COPY layer {index} / # imagewright test fixture"}
                    for index in range(len(blobs))],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = f"{_digest(config_bytes)}.json"
    layer_names = [f"{_digest(blob)}/layer.tar" for blob in blobs]
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": layer_names}]
    with tarfile.open(path, mode="w") as archive:
        for name, data in ((config_name, config_bytes), *zip(layer_names, blobs, strict=True),
                           ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return f"sha256:{_digest(config_bytes)}"
