"""BuildKit on the real engine: images the same as the legacy builder's, the build CA in no layer of
any stage and in no history, the bake file accepted by buildx and one of its targets built from the
checkout, and the legacy fallback when buildx is absent.

Everything is built from a temporary copy of backend-flask under a unique name: no standard tag is
touched (no engine lock needed), and every image made here is removed afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder import naming
from builder.build.context import build_trust_bundle
from builder.build.images import BuildResult, ImageBuilder
from builder.engine.buildkit import BUILDX_ENV, choose_builder
from builder.engine.client import Engine
from builder.engine.filesystem import read_file
from builder.project import Project
from tests.conftest import QuietProgress

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)-----END CERTIFICATE-----", re.S)
# What may differ between two builds of the same inputs: when they were made.
WHEN = ("org.opencontainers.image.created",)
CERTIFI = "/opt/venv/lib/python3.12/site-packages/certifi/cacert.pem"
CONFIG_KEYS = ("User", "Entrypoint", "Cmd", "Healthcheck", "WorkingDir", "ExposedPorts", "Env",
               "Labels")


def certificates(bundle: bytes) -> set[bytes]:
    return {b"".join(body.split()) for body in PEM.findall(bundle)}


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder", "-C", str(root), *args],
                          capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "300", **(env or {})})


@dataclass
class Builds:
    root: Path
    name: str
    project: Project
    buildkit: dict[str, BuildResult]  # by target label
    legacy: dict[str, str]  # label → image id
    legacy_log: str
    said: list[str]


@pytest.fixture(scope="module")
def builds(engine: Engine) -> Iterator[Builds]:
    """backend-flask as `bk-<id>`: dev and its first available prod flavor built on BuildKit by the
    tool, then again by the CLI with no buildx to be found (the legacy fallback)."""
    name = f"bk-{uuid.uuid4().hex[:10]}"
    made: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="imagewright-buildkit-test-") as temp:
        root = Path(temp)
        shutil.copytree(ROOT / "templates", root / "templates")
        (root / "build").mkdir()
        shutil.copytree(ROOT / "images" / "backend-flask", root / "images" / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
        spec = root / "images" / name / "image.yaml"
        spec.write_text(spec.read_text().replace("name: backend-flask", f"name: {name}"))
        try:
            rendered = cli(root, "render")
            assert rendered.returncode == 0, rendered.stderr
            project = Project(root)
            service = project.service(name)
            said: list[str] = []
            builder = ImageBuilder(engine, project, QuietProgress(), said.append)
            targets = [project.catalog.targets(service)[0],
                       builder.choose_flavors(service, None).build[0]]
            buildkit = {t.label: builder.build_target(service, t, primary=False) for t in targets}
            made.update(result.image_id for result in buildkit.values())
            legacy: dict[str, str] = {}
            log = ""
            for target in targets:
                variant = ["--variant", target.variant]
                flavor = ["--flavor", target.flavor] if target.flavor else []
                done = cli(root, "build", name, *variant, *flavor,
                           env={BUILDX_ENV: str(root / "no-such-folder" / "docker-buildx")})
                assert done.returncode == 0, done.stdout + done.stderr
                log += done.stdout
                image = engine.image(naming.image_ref(name, target.label))
                assert image is not None
                legacy[target.label] = image.id
                made.add(image.id)
            yield Builds(root, name, project, buildkit, legacy, log, said)
        finally:
            for image_id in {*made, *engine.images_named(name)}:
                engine.remove_image(image_id, force=True)
    assert engine.images_named(name) == []


def test_the_tool_builds_on_buildkit_here(builds: Builds) -> None:
    """`make engine` installs buildx: BuildKit is what builds, and the log says so."""
    assert choose_builder().buildkit
    assert any(line.startswith("builder: BuildKit (buildx ") for line in builds.said), builds.said


def test_legacy_fallback_builds_when_buildx_is_absent(builds: Builds) -> None:
    assert "! builder: the legacy builder (deprecated by Docker), not BuildKit:" in builds.legacy_log
    assert "no-such-folder/docker-buildx cannot run" in builds.legacy_log
    for label, image_id in builds.legacy.items():
        assert image_id != builds.buildkit[label].image_id  # really another build


def _config(engine: Engine, image_id: str) -> dict[str, object]:
    config = engine.inspect_image(image_id)["Config"]
    picked = {key: config.get(key) for key in CONFIG_KEYS}
    picked["Labels"] = {key: value for key, value in (config.get("Labels") or {}).items()
                        if key not in WHEN}
    return picked


# Records of when a build ran, which differ between any two builds: apt's and dpkg's logs and
# ldconfig's cache of file times.
BUILD_RECORDS = ("var/log/", "var/cache/ldconfig/aux-cache")
PYC_HEADER = 16  # magic, flags, and (hash-based pycs) the source's hash


def _digest(name: str, data: bytes) -> str:
    """A file's content, as far as two builds of the same sources can agree on it. A hash-based
    .pyc is its header: the same header means the same source compiled the same way; its marshal
    body may still differ, as marshal's back-references follow reference counts."""
    if name.endswith(".pyc") and data[4:8] != b"\0\0\0\0":
        return "pyc " + data[:PYC_HEADER].hex()
    return hashlib.sha256(data).hexdigest()


def _files(engine: Engine, image_id: str) -> dict[str, tuple[int, str]]:
    """Every path of the image's filesystem: its mode and the digest of its content (or link)."""
    container = engine.sdk.api.create_container(image_id, command=["true"], entrypoint=[])
    try:
        with tempfile.TemporaryFile() as spool:
            for chunk in engine.sdk.api.export(container["Id"]):
                spool.write(chunk)
            spool.seek(0)
            found: dict[str, tuple[int, str]] = {}
            with tarfile.open(fileobj=spool, mode="r:") as tar:
                for member in tar:
                    if member.name.startswith(BUILD_RECORDS):
                        continue
                    if member.isfile():
                        data = tar.extractfile(member).read()  # type: ignore[union-attr]
                        digest = _digest(member.name, data)
                    else:
                        digest = member.linkname
                    found[member.name] = (member.mode, digest)
            return found
    finally:
        engine.sdk.api.remove_container(container["Id"], force=True)


def test_buildkit_and_legacy_images_are_the_same(builds: Builds, engine: Engine) -> None:
    """Same labels (io.imagewright.*, OCI), user, healthcheck, entrypoint, command, environment,
    and the same files with the same content and modes."""
    for label, result in builds.buildkit.items():
        legacy = builds.legacy[label]
        assert _config(engine, result.image_id) == _config(engine, legacy), label
        labels = engine.inspect_image(result.image_id)["Config"]["Labels"]
        assert labels[naming.SERVICE_LABEL] == builds.name
        assert labels["org.opencontainers.image.base.digest"].startswith("sha256:")
        buildkit_files, legacy_files = _files(engine, result.image_id), _files(engine, legacy)
        differing = sorted(path for path in buildkit_files.keys() | legacy_files.keys()
                           if buildkit_files.get(path) != legacy_files.get(path))
        assert differing == [], (label, differing[:20])


def _stages(dockerfile: str) -> list[str]:
    return re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M)


def _layer_files(engine: Engine, image_id: str) -> Iterator[tuple[str, bytes]]:
    """Every regular file of every layer of an image (what `docker save` holds), by layer."""
    with tempfile.TemporaryFile() as spool:
        for chunk in engine.save(image_id, 1 << 20):
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r:") as saved:
            for member in saved:
                if not member.name.endswith("layer.tar"):
                    continue
                layer = saved.extractfile(member)
                assert layer is not None
                with tarfile.open(fileobj=layer, mode="r:") as files:
                    for entry in files:
                        if entry.isfile():
                            data = files.extractfile(entry).read()  # type: ignore[union-attr]
                            yield f"{member.name}:{entry.name}", data


def test_the_build_ca_is_in_no_layer_of_any_stage_and_no_history(builds: Builds,
                                                                  engine: Engine) -> None:
    """On BuildKit the CA is a secret mount: not in the final images, and not in the builder
    stages either (each built on its own, as BuildKit keeps them in its cache)."""
    # The build machine's extra trust (here: the TLS-intercepting proxy's CA): what the build
    # bundle has beyond the distro's and certifi's public ones, and what the host added itself.
    public = certificates(read_file(engine, "ubuntu:24.04", "/etc/ssl/certs/ca-certificates.crt")
                          or b"")
    for result in builds.buildkit.values():
        public |= certificates(read_file(engine, result.image_id, CERTIFI) or b"")
    host_extra = [p.read_bytes() for p in Path("/usr/local/share/ca-certificates").glob("*.crt")]
    # Builder stages hold public bundles of their own (Ubuntu's pip vendors a certifi): the CAs the
    # host added are the proof where there are any.
    extra = ({cert for bundle in host_extra for cert in certificates(bundle)}
             or certificates(build_trust_bundle()) - public)
    assert extra, "this machine's build trust has no extra CA, so there is nothing to prove"
    needles = [cert[:64] for cert in extra]
    service = builds.project.service(builds.name)
    images: dict[str, str] = {f"{label} (final)": result.image_id
                              for label, result in builds.buildkit.items()}
    builder = ImageBuilder(engine, builds.project, QuietProgress(), lambda text: None)
    for label, result in builds.buildkit.items():
        dockerfile = builds.project.renderer.dockerfile(service, result.target)
        stages = _stages(dockerfile)
        assert "venv" in stages, label
        for stage in stages:
            images[f"{label} stage {stage}"] = builder.build_stage(service, result.target, stage)
    try:
        for what, image_id in images.items():
            holding = [path for path, data in _layer_files(engine, image_id)
                       if any(needle in data for needle in needles)]
            assert holding == [], (what, holding)
            history = json.dumps(engine.history(image_id)).encode()
            assert not any(needle in history for needle in needles), what
            assert b"BEGIN CERTIFICATE" not in history, what
    finally:
        for what, image_id in images.items():
            if "stage" in what:
                engine.remove_image(image_id, force=True)


def _buildx() -> str:
    buildx = choose_builder().buildx
    assert buildx is not None, "BuildKit is not available here: run `make engine`"
    return buildx.path


def test_bake_print_accepts_the_committed_file_and_it_covers_every_target(project: Project) -> None:
    printed = subprocess.run([_buildx(), "bake", "--file", str(project.build_dir / naming.BAKE_FILE),
                              "--print", "default", *(spec.name for spec in project.services())],
                             capture_output=True, text=True, check=False, cwd=project.root)
    assert printed.returncode == 0, printed.stderr
    definition = json.loads(printed.stdout)
    expected = {naming.bake_target(spec.name, target.label)
                for spec in project.services() for target in project.catalog.targets(spec)}
    assert set(definition["target"]) == expected
    flavors = {target.split("-prod-")[1] for target in expected if "-prod-" in target}
    assert flavors == {flavor for spec in project.services() for flavor in spec.prod.flavors}
    for name, target in definition["target"].items():
        assert target["context"] == "."
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                            target["args"][project.layout.build_args.created]), name
        assert target["args"][project.layout.build_args.revision] == "unknown"


def test_bake_of_one_target_builds_the_tools_image_from_the_checkout(builds: Builds,
                                                                     engine: Engine) -> None:
    """`docker buildx bake` at the project root builds what the tool builds: same layers (every
    step a cache hit of the tool's build: the same inputs), same config and labels."""
    result = builds.buildkit[next(label for label in builds.buildkit if label != "dev")]
    target = naming.bake_target(builds.name, result.target.label)
    baked = subprocess.run([_buildx(), "bake", "--progress", "plain", "--file",
                            str(builds.project.build_dir / naming.BAKE_FILE), target],
                           capture_output=True, text=True, check=False, cwd=builds.root,
                           env={**os.environ, "IMAGEWRIGHT_REVISION": "baked"})
    assert baked.returncode == 0, baked.stderr[-3000:]
    image = engine.image(f"{naming.image_ref(builds.name, result.target.label)}-baked")
    assert image is not None
    tool = engine.inspect_image(result.image_id)
    assert image.attrs["RootFS"]["Layers"] == tool["RootFS"]["Layers"]
    bake_config, tool_config = _config(engine, image.id), _config(engine, result.image_id)
    for config in (bake_config, tool_config):  # the tool fills these from the machine's bases
        labels = config["Labels"]
        assert isinstance(labels, dict)
        for key in ("org.opencontainers.image.revision", "org.opencontainers.image.base.digest",
                    naming.BASE_PROVENANCE_LABEL):
            labels.pop(key)
    assert bake_config == tool_config
