"""Builds on BuildKit through `docker buildx` (the engine's embedded BuildKit, `docker` driver).

The buildx CLI plugin is run standalone (`docker-buildx build …`): it is one Go binary that talks to
the same engine as the SDK, and running it directly means neither the `docker` CLI found first on
PATH (which may have no plugins) nor the user's CLI config decides whether BuildKit is used.

Without `# syntax=` the Dockerfile frontend is the engine's built-in one (BuildKit v0.8 in Docker
20.10: `RUN --mount=type=cache|secret` work; named build contexts and heredocs do not).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.engine.client import EngineError

BUILDER_ENV = "IMAGEWRIGHT_BUILDER"  # "legacy" forces the classic builder; "buildkit" requires BuildKit
BUILDX_ENV = "IMAGEWRIGHT_BUILDX"  # the buildx binary to use instead of looking for one
PLUGIN_NAME = "docker-buildx"
# Where the docker CLI looks for plugins (docker/cli's defaults), after the user's own folder.
PLUGIN_DIRS = (
    Path.home() / ".docker" / "cli-plugins",
    Path("/usr/local/lib/docker/cli-plugins"),
    Path("/usr/local/libexec/docker/cli-plugins"),
    Path("/usr/lib/docker/cli-plugins"),
    Path("/usr/libexec/docker/cli-plugins"),
)
PROBE_TIMEOUT_S = 20


@dataclass(frozen=True)
class Buildx:
    """A working buildx binary and its version."""

    path: str
    version: str


@dataclass(frozen=True)
class BuilderChoice:
    """Which builder builds images here, and why (said in the build log when it is the legacy one)."""

    buildx: Buildx | None
    reason: str

    @property
    def buildkit(self) -> bool:
        return self.buildx is not None


def find_buildx(environ: Mapping[str, str] | None = None) -> str | None:
    """The buildx binary: $IMAGEWRIGHT_BUILDX, else `docker-buildx` on PATH, else a plugin folder."""
    environ = os.environ if environ is None else environ
    if explicit := environ.get(BUILDX_ENV):
        return explicit
    on_path = shutil.which(PLUGIN_NAME, path=environ.get("PATH"))
    if on_path:
        return on_path
    for folder in PLUGIN_DIRS:
        candidate = folder / PLUGIN_NAME
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def probe_buildx(path: str) -> Buildx | str:
    """`buildx version` and `buildx inspect`: a Buildx when it can build into this engine, else why not."""
    try:
        version = subprocess.run([path, "version"], capture_output=True, text=True,
                                 timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{path} cannot run ({error})"
    if version.returncode != 0:
        return f"`{path} version` failed: {_last_line(version.stderr or version.stdout)}"
    words = version.stdout.split()
    inspect = subprocess.run([path, "inspect"], capture_output=True, text=True,
                             timeout=PROBE_TIMEOUT_S, check=False)
    if inspect.returncode != 0:
        return f"`{path} inspect` failed: {_last_line(inspect.stderr or inspect.stdout)}"
    # Images must land in this engine's image store: the docker driver writes there directly.
    driver = next((line.split(":", 1)[1].strip() for line in inspect.stdout.splitlines()
                   if line.strip().startswith("Driver:")), "")
    if driver != "docker":
        return (f"the current buildx builder uses the {driver or 'unknown'} driver, not the engine's "
                "own (`docker buildx use default`)")
    return Buildx(path, words[1] if len(words) > 1 else "unknown")


def choose_builder(environ: Mapping[str, str] | None = None) -> BuilderChoice:
    """BuildKit wherever buildx works, unless $IMAGEWRIGHT_BUILDER=legacy asks for the old builder."""
    environ = os.environ if environ is None else environ
    wanted = environ.get(BUILDER_ENV, "").strip().lower()
    if wanted == "legacy":
        return BuilderChoice(None, f"{BUILDER_ENV}=legacy")
    path = find_buildx(environ)
    found = probe_buildx(path) if path else (f"no buildx found ({PLUGIN_NAME} not on PATH nor in a "
                                             "docker CLI plugin folder; `make engine` installs it)")
    if isinstance(found, Buildx):
        return BuilderChoice(found, f"buildx {found.version}")
    if wanted == "buildkit":
        raise EngineError(f"{BUILDER_ENV}=buildkit, but BuildKit cannot be used: {found}")
    return BuilderChoice(None, found)


@dataclass(frozen=True)
class BuildkitRequest:
    """One `buildx build` of a context tar (its Dockerfile at the top, named `Dockerfile`)."""

    context: io.BytesIO
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    secrets: Mapping[str, bytes]  # secret id → content; mounted by RUN --mount=type=secret only
    nocache: bool = False
    stage: str | None = None  # --target: build up to this stage only
    tags: Sequence[str] = ()


class BuildkitBuild:
    """A running `buildx build --progress plain`: its log lines as they come, then the image id."""

    def __init__(self, buildx: Buildx, request: BuildkitRequest) -> None:
        self.buildx = buildx
        self.request = request
        self.image_id = ""

    def command(self, context_dir: Path, iidfile: Path, secrets: Mapping[str, Path]) -> list[str]:
        request = self.request
        command = [self.buildx.path, "build", "--progress", "plain", "--iidfile", str(iidfile),
                   "--file", str(context_dir / "Dockerfile")]
        for name, value in request.build_args.items():
            command += ["--build-arg", f"{name}={value}"]
        for name, value in request.labels.items():
            command += ["--label", f"{name}={value}"]
        for secret_id, path in secrets.items():
            command += ["--secret", f"id={secret_id},src={path}"]
        for tag in request.tags:
            command += ["--tag", tag]
        if request.nocache:
            command.append("--no-cache")
        if request.stage:
            command += ["--target", request.stage]
        return [*command, str(context_dir)]

    def lines(self) -> Iterator[str]:
        """BuildKit's plain progress, line by line; raises EngineError when the build fails.

        The context tar is unpacked as it is (modes and times kept: the files are the ones the
        legacy builder would get); secrets go to files of their own, outside the context."""
        with tempfile.TemporaryDirectory(prefix="imagewright-buildx-") as temp:
            context_dir, secrets_dir = Path(temp) / "context", Path(temp) / "secrets"
            with tarfile.open(fileobj=self.request.context, mode="r:") as tar:
                tar.extractall(context_dir, filter="fully_trusted")  # our own tar, just made
            self.request.context.seek(0)
            secrets_dir.mkdir(mode=0o700)
            secrets: dict[str, Path] = {}
            for secret_id, data in self.request.secrets.items():
                secrets[secret_id] = secrets_dir / secret_id
                secrets[secret_id].touch(mode=0o600)
                secrets[secret_id].write_bytes(data)
            iidfile = Path(temp) / "iid"
            yield from _stream(self.command(context_dir, iidfile, secrets))
            self.image_id = iidfile.read_text().strip() if iidfile.is_file() else ""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def bake(buildx: Buildx, root: Path, bake_file: Path, targets: Sequence[str], *,
         nocache: bool = False, environ: Mapping[str, str] | None = None) -> Iterator[str]:
    """`buildx bake -f FILE TARGET…` at the project root (bake's contexts are relative to it): its
    plain progress, line by line; raises EngineError when a target fails."""
    command = [buildx.path, "bake", "--progress", "plain", "--file", str(bake_file),
               *(["--no-cache"] if nocache else []), *targets]
    yield from _stream(command, cwd=root, environ=environ)


def _stream(command: list[str], *, cwd: Path | None = None,
            environ: Mapping[str, str] | None = None) -> Iterator[str]:
    """Run a buildx command, yielding its output lines; EngineError with its error when it fails."""
    try:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace",
                                   stdin=subprocess.DEVNULL, env={**os.environ, **(environ or {})})
    except OSError as error:
        raise EngineError(f"cannot run {command[0]}: {error}") from None
    tail: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            tail = [*tail[-19:], line]
            yield line
        code = process.wait()
    finally:
        if process.poll() is None:  # interrupted: the build must not outlive us
            process.terminate()
            process.wait()
    if code != 0:
        errors = [line for line in tail if line.startswith("ERROR:")]
        raise EngineError((errors[-1] if errors else _last_line("\n".join(tail)))
                          .removeprefix("ERROR: "))


def prune_cache_mounts(buildx: Buildx) -> None:
    """Empty BuildKit's cache mounts (pip's cache among them); layers and images are untouched."""
    result = subprocess.run([buildx.path, "prune", "--force", "--filter", "type=exec.cachemount"],
                            capture_output=True, text=True, check=False, timeout=300)
    if result.returncode != 0:
        raise EngineError(f"buildx prune of cache mounts failed: {_last_line(result.stderr)}")
