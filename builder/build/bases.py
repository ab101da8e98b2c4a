"""Base images on a machine that may have no registry: local → pull → bootstrap recipe → error.

Each base records where it came from in a label, so every image built on it can say so too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from builder.core.clock import utc_timestamp
from builder.core.errors import FaultError, UserError
from builder.core.yamlfile import load_yaml
from builder.engine.client import Engine, LocalImage
from builder.naming import PROVENANCE_LABEL, RECIPE_LABEL
from builder.project import Project
from builder.spec.catalog import BaseImage, DockerfileRecipe, MmdebstrapRecipe


@dataclass(frozen=True)
class ResolvedBase:
    ref: str
    image_id: str
    digest: str  # a registry digest when there is one, else the local image id
    provenance: str
    how: str  # "local" | "pulled" | "bootstrapped"


@dataclass(frozen=True)
class Availability:
    ref: str
    available: bool
    how: str  # what resolving it would do, or why it can't be done


class BaseMissingError(UserError):
    pass


# Build hooks let `bases` build a Dockerfile recipe without importing the build module's UI.
DockerfileBuilder = Callable[[str, str, dict[str, str]], str]
Say = Callable[[str], None]


class BaseResolver:
    def __init__(self, engine: Engine, project: Project, build: DockerfileBuilder,
                 say: Say) -> None:
        self.engine = engine
        self.project = project
        self.catalog = project.catalog
        self.build = build
        self.say = say
        # One command asks about the same base several times (flavor choice, then the build);
        # an offline machine should pay for one failed pull per base, not one per question.
        self._unpullable: set[str] = set()

    def local(self, ref: str) -> LocalImage | None:
        return self.engine.image(ref)

    def availability(self, ref: str) -> Availability:
        """What `resolve` would do, without doing it (pull is tried: it fails fast when offline)."""
        if self.local(ref):
            return Availability(ref, True, "present locally")
        base = self.catalog.base(ref)
        if self._pull(ref):
            return Availability(ref, True, "pulled")
        if isinstance(base.recipe, MmdebstrapRecipe):
            if shutil.which("mmdebstrap"):
                return Availability(ref, True, f"bootstrap with mmdebstrap ({base.recipe.suite})")
            return Availability(ref, False, "its recipe needs mmdebstrap, which is not installed")
        if isinstance(base.recipe, DockerfileRecipe):
            parent = self.availability(base.recipe.from_image)
            if parent.available:
                return Availability(ref, True, f"assemble from {base.recipe.from_image}")
            return Availability(ref, False, f"it is assembled from {parent.ref}, and {parent.how}")
        return Availability(ref, False, base.unavailable_reason or "it has no bootstrap recipe")

    def resolve(self, ref: str) -> ResolvedBase:
        image = self.local(ref)
        how = "local"
        if image is None and self._pull(ref):
            image, how = self.local(ref), "pulled"
        if image is None:
            base = self.catalog.base(ref)
            if base.recipe is None:
                raise BaseMissingError(f"base image {ref} is not available on this machine: "
                                       f"{base.unavailable_reason or 'no bootstrap recipe'}")
            self.say(f"base {ref}: not present locally and cannot be pulled; bootstrapping it")
            self.bootstrap(base)
            image, how = self.local(ref), "bootstrapped"
            if image is None:
                raise FaultError(f"base image {ref}: bootstrap finished but no image was tagged")
        labels = image.labels or {}
        base = self.catalog.base(ref)
        if (how == "local" and base.recipe is not None and PROVENANCE_LABEL in labels
                and labels.get(RECIPE_LABEL) != self.recipe_digest(base)):
            self.say(f"base {ref}: its recipe changed since it was made; bootstrapping it again")
            self.bootstrap(base)
            image, how = self.local(ref) or image, "bootstrapped"
            labels = image.labels or {}
        digests = image.repo_digests
        provenance = labels.get(PROVENANCE_LABEL) or ("pulled from a registry" if digests
                                                      else "local image of unknown origin")
        return ResolvedBase(ref, image.id, digests[0].split("@")[-1] if digests else image.id,
                            provenance, how)

    def pins(self, refs: Iterable[str]) -> tuple[dict[str, str], list[str]]:
        """What each base is now on this machine: a registry digest, else the local image id (which
        pins this machine's bootstrapped base); and the refs that are not present, left unpinned."""
        pins: dict[str, str] = {}
        absent: list[str] = []
        for ref in sorted(refs):
            image = self.local(ref)
            if image is None:
                absent.append(ref)
            else:
                pins[ref] = image.repo_digests[0] if image.repo_digests else image.id
        return pins, absent

    def pinnable(self) -> set[str]:
        """The bases the renders use, and the images recipes assemble bases from."""
        return self.catalog.bases_for(self.project.services()) | {
            recipe.from_image for base in self.catalog.bases.values()
            if isinstance(recipe := base.recipe, DockerfileRecipe)}

    def recipe_digest(self, base: BaseImage) -> str:
        if isinstance(base.recipe, DockerfileRecipe):
            text = self._recipe_dockerfile(base, base.recipe)
        else:
            text = json.dumps(asdict(base.recipe) if base.recipe else {}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def bootstrap(self, base: BaseImage) -> None:
        """Make `base.ref` from its recipe, whether or not it exists already."""
        if isinstance(base.recipe, MmdebstrapRecipe):
            self._bootstrap_mmdebstrap(base, base.recipe)
        elif isinstance(base.recipe, DockerfileRecipe):
            self._assemble(base, base.recipe)
        else:
            raise BaseMissingError(f"base image {base.ref} has no bootstrap recipe")

    def _pull(self, ref: str) -> bool:
        if ref in self._unpullable:
            return False
        if self.engine.pull(ref):
            return True
        self._unpullable.add(ref)
        return False

    def _bootstrap_mmdebstrap(self, base: BaseImage, recipe: MmdebstrapRecipe) -> None:
        if not shutil.which("mmdebstrap"):
            raise BaseMissingError(f"base image {base.ref} is not available on this machine and "
                                   "mmdebstrap is not installed (apt-get install mmdebstrap)")
        command = ["mmdebstrap", "--quiet", "--variant=minbase",
                   f"--components={','.join(recipe.components)}"]
        if recipe.include:
            command.append(f"--include={','.join(recipe.include)}")
        when = utc_timestamp()
        provenance = f"mmdebstrap --variant=minbase {recipe.suite} on {when}"
        with tempfile.TemporaryDirectory(prefix="imagewright-rootfs-") as temp:
            if recipe.keyring:
                # apt inside mmdebstrap reads the keyring as the unprivileged _apt user, and the
                # project may sit in a private (0700) folder: hand it a world-readable copy.
                os.chmod(temp, 0o755)
                keyring = Path(temp) / "archive-keyring.gpg"
                shutil.copyfile(self._keyring(recipe), keyring)
                keyring.chmod(0o644)
                command.append(f"--keyring={keyring}")
            tarball = Path(temp) / "rootfs.tar"
            self.say(f"  $ {' '.join(command)} {recipe.suite} {tarball.name}")
            result = subprocess.run([*command, recipe.suite, str(tarball)], capture_output=True,
                                    text=True, check=False)
            if result.returncode != 0:
                tail = " | ".join(result.stderr.strip().splitlines()[-6:])
                raise FaultError(f"bootstrapping {base.ref} with mmdebstrap failed: {tail}")
            self.engine.import_rootfs(
                str(tarball), base.ref,
                changes=[f'LABEL {PROVENANCE_LABEL}="{provenance}"',
                         f'LABEL {RECIPE_LABEL}="{self.recipe_digest(base)}"', 'CMD ["bash"]'],
            )

    def _keyring(self, recipe: MmdebstrapRecipe) -> Path:
        """The distro's archive key; fetched as a .deb from Debian when the host lacks it."""
        assert recipe.keyring is not None
        installed = Path(recipe.keyring.file)
        if installed.is_file():
            return installed
        cached = self.project.cache_dir / "keyrings" / installed.name
        if cached.is_file():
            return cached
        self.say(f"  fetching {installed.name} from Debian {recipe.keyring.suite}'s "
                 f"{recipe.keyring.package} package")
        _fetch_deb_file(recipe.keyring.package, recipe.keyring.suite, installed, cached)
        return cached

    def _recipe_dockerfile(self, base: BaseImage, recipe: DockerfileRecipe) -> str:
        templates = self.project.templates_dir
        values = load_yaml(templates / recipe.values, f"templates/{recipe.values}").data
        values.update(recipe.settings)
        return self.project.renderer.render_template(
            recipe.template, assemble_image=recipe.from_image, python_version=base.python, **values)

    def _assemble(self, base: BaseImage, recipe: DockerfileRecipe) -> None:
        parent = self.resolve(recipe.from_image)
        when = utc_timestamp()
        self.build(base.ref, self._recipe_dockerfile(base, recipe), {
            PROVENANCE_LABEL: f"assembled from {parent.ref} ({parent.image_id[:19]}) .debs "
                              f"by templates/{recipe.template} on {when}",
            RECIPE_LABEL: self.recipe_digest(base),
        })


def _debian_mirror() -> str:
    """The Debian mirror this host already uses, so nothing here names a host of its own."""
    sources = [*Path("/etc/apt/sources.list.d").glob("*.sources"), Path("/etc/apt/sources.list"),
               *Path("/etc/apt/sources.list.d").glob("*.list")]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r"(?m)^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text):
            if "debian" in match.group(1) and "security" not in match.group(1):
                return match.group(1)
    raise BaseMissingError("cannot find a Debian mirror in /etc/apt to fetch a keyring from")


def _fetch_deb_file(package: str, suite: str, wanted: Path, destination: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="imagewright-keyring-") as temp:
        root = Path(temp)
        (root / "lists" / "partial").mkdir(parents=True)
        (root / "cache" / "archives" / "partial").mkdir(parents=True)
        (root / "sources.list").write_text(
            f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {_debian_mirror()} "
            f"{suite} main\n")
        options = ["-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
                   "-o", "Dir::Etc::SourceParts=/dev/null", "-o", f"Dir::State::Lists={root / 'lists'}",
                   "-o", f"Dir::Cache={root / 'cache'}", "-o", "APT::Sandbox::User=root"]
        for step in (["update"], ["download", package]):
            result = subprocess.run(["apt-get", "-qq", *options, *step], cwd=root,
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BaseMissingError(f"cannot fetch {package} from Debian {suite}: "
                                       f"{result.stderr.strip().splitlines()[-1:]}")
        deb = next(root.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root / "x")], check=True)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / "x" / wanted.relative_to("/"), destination)
