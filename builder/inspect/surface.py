"""Attack surface of an image, read from its exported filesystem and config.

Works on images with no shell (distroless): nothing runs inside the container; it is created,
exported as a tar stream, and removed.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import PurePosixPath

from builder.engine.client import Engine
from builder.engine.filesystem import exported_files, read_file
from builder.spec.layout import ImagePaths

BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")
SHELLS = ("sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox")
PACKAGE_MANAGERS = ("apt", "apt-get", "dpkg", "apk", "yum", "dnf", "rpm", "pip", "pip3")
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc", "ld", "as", "make")
# Caches a build should have cleaned in the same layer that filled them (and the build stages'
# scratch folder, from the layout).
CACHE_DIRS = ("var/lib/apt/lists/", "var/cache/apt/", "var/cache/apk/", "root/.cache/pip/")


@dataclass(frozen=True)
class AttackSurface:
    image: str
    user: str
    runs_as_root: bool
    shells: tuple[str, ...]
    package_managers: tuple[str, ...]
    compilers: tuple[str, ...]
    pip_module: bool
    setuid_files: tuple[str, ...]
    world_writable: tuple[str, ...]
    package_caches: tuple[str, ...]
    exposed_ports: tuple[str, ...]
    # Where .py sources ship beside the byte-code: "stdlib", "packages" (the venv's), or neither
    # (`prod.python_sources: bytecode`).
    python_sources: tuple[str, ...] = ()

    @property
    def shell_present(self) -> bool:
        return bool(self.shells)


def attack_surface(engine: Engine, image: str, paths: ImagePaths) -> AttackSurface:
    cache_dirs = (*CACHE_DIRS, paths.scratch.strip("/") + "/")
    config = engine.inspect_image(image)["Config"] or {}
    user = str(config.get("User") or "")
    shells: list[str] = []
    managers: list[str] = []
    compilers: list[str] = []
    setuid: list[str] = []
    writable: list[str] = []
    caches: set[str] = set()
    pip_module = False
    sources: set[str] = set()
    venv_lib = paths.venv.strip("/") + "/lib/"
    for member in exported_files(engine, image):
        path = PurePosixPath(member.name)
        name = path.name
        if str(path.parent) in BIN_DIRS and (member.isfile() or member.issym()):
            if name in SHELLS:
                shells.append(f"/{path}")
            if name in PACKAGE_MANAGERS:
                managers.append(f"/{path}")
            if name in COMPILERS or name.startswith(("gcc-", "x86_64-linux-gnu-gcc", "clang-")):
                compilers.append(f"/{path}")
        if name == "pip" and member.isdir() and "site-packages" in path.parts:
            pip_module = True
        if member.isfile() and member.mode & (stat.S_ISUID | stat.S_ISGID):
            setuid.append(f"/{path}")
        is_sticky_dir = member.isdir() and member.mode & stat.S_ISVTX
        # Device nodes under /dev are the engine's, not the image's.
        if (member.mode & stat.S_IWOTH and (member.isfile() or member.isdir())
                and not is_sticky_dir and path.parts[:1] != ("dev",)):
            writable.append(f"/{path}")
        if member.isfile() and name.endswith(".py"):
            sources.update(_sources_kind(path, venv_lib))
        if member.isfile() and name != "lock":
            caches.update(f"/{cache}" for cache in cache_dirs if str(path).startswith(cache))
    return AttackSurface(
        image=image,
        user=user,
        runs_as_root=user.split(":")[0] in ("", "0", "root"),
        shells=tuple(sorted(shells)),
        package_managers=tuple(sorted(managers)),
        compilers=tuple(sorted(compilers)),
        pip_module=pip_module,
        setuid_files=tuple(sorted(setuid)),
        world_writable=tuple(sorted(writable)),
        package_caches=tuple(sorted(caches)),
        exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
        python_sources=tuple(kind for kind in ("stdlib", "packages") if kind in sources),
    )


def _sources_kind(path: PurePosixPath, venv_lib: str) -> tuple[str, ...]:
    """A .py file's part of Python: installed packages (the venv's, or any site-packages or
    dist-packages: an image not built by imagewright), the stdlib (/usr/lib/python3.X or
    /usr/local/lib/python3.X outside those), or neither (the app's own, anything else)."""
    parts = path.parts
    if str(path).startswith(venv_lib) or {"site-packages", "dist-packages"} & set(parts):
        return ("packages",)
    lib = parts[:2] if parts[:2] == ("usr", "lib") else parts[:3]
    if lib in (("usr", "lib"), ("usr", "local", "lib")) and len(parts) > len(lib) + 1 \
            and parts[len(lib)].startswith("python3"):
        return ("stdlib",)
    return ()


def python_version(engine: Engine, image: str, paths: ImagePaths) -> str:
    """The Python version the image's venv was made with (`3.12.3`), from pyvenv.cfg."""
    config = read_file(engine, image, paths.pyvenv_cfg) or b""
    for line in config.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return value.strip()
    return ""

