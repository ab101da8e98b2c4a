"""The trimmed distroless base and `prod.python_sources`, on real images: what the trim removed is
nothing a service needs (TLS with the distro's bundle, time zones, every extension module left, a
C++ manylinux wheel), byte-code only still names file and line in tracebacks, and `keep` ships the
sources while still importing from byte-code.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import docker
import pytest

from builder.build.images import ImageBuilder
from builder.engine.client import Engine
from builder.engine.containers import run_to_completion
from builder.engine.filesystem import exported_files
from builder.inspect.surface import attack_surface
from builder.project import Project
from tests.conftest import QuietProgress
from tests.support.throwaway import project_root, remove_images

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "images" / "backend-flask"
FLAVOR = "distroless"
PYTHON = "/opt/venv/bin/python"
# greenlet >= 3 is C++: its manylinux wheel links libstdc++ and libgcc_s from the base.
WHEEL = "greenlet>=3"


def require_bases(builder: ImageBuilder, *refs: str) -> None:
    """The one accepted skip: a base image this machine cannot have."""
    for ref in refs:
        availability = builder.bases.availability(ref)
        if not availability.available:
            pytest.skip(f"base image {ref} is not available here: {availability.how}")


def python(engine: Engine, image: str, code: str, *flags: str) -> tuple[int, str]:
    return run_to_completion(engine, image, [PYTHON, *flags, "-c", code])


def files(engine: Engine, image: str) -> list[PurePosixPath]:
    return [PurePosixPath(member.name) for member in exported_files(engine, image)
            if member.isfile() or member.issym()]


@pytest.fixture(scope="module")
def prod(image_builder: ImageBuilder, project: Project) -> str:
    """backend-flask's default prod image in the distroless flavor (byte-code only)."""
    spec = project.service("backend-flask")
    target = project.catalog.flavor(spec, FLAVOR)
    require_bases(image_builder, target.base, target.builder)
    return image_builder.build_target(spec, target, primary=False).tags[0]


# ---- the trimmed base serves what services use --------------------------------------------------

TLS_DEFAULTS = """
import os, ssl
paths = ssl.get_default_verify_paths()
assert os.path.isfile(paths.openssl_cafile), paths
assert os.path.isdir(paths.openssl_capath), paths
os.environ.pop("SSL_CERT_FILE", None)  # OpenSSL's own default paths, as a bare subprocess has them
context = ssl.create_default_context()
count = context.cert_store_stats()["x509_ca"]
assert count > 100, count
print("CAs", count)
"""


def test_tls_trusts_the_distros_ca_bundle_by_default(engine: Engine, prod: str) -> None:
    code, output = python(engine, prod, TLS_DEFAULTS)
    assert code == 0 and "CAs " in output, output


HANDSHAKE = """
import socket, ssl, threading
open("/dev/shm/server.pem", "w").write(SERVER)
server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server.load_cert_chain("/dev/shm/server.pem")
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]

def serve():
    while True:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(5).upper())
        except (ssl.SSLError, OSError):
            pass

threading.Thread(target=serve, daemon=True).start()

def talk(context):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            return tls.recv(5), tls.version()

print("explicit CA:", *talk(ssl.create_default_context(cadata=CA)))
try:
    talk(ssl.create_default_context())
except ssl.SSLCertVerificationError as error:
    print("distro bundle:", error.verify_message)
"""


def test_a_tls_handshake_verifies_against_an_explicit_ca(engine: Engine, prod: str,
                                                         tmp_path: Path) -> None:
    """_ssl, libssl and libcrypto for real: a throwaway CA signs a localhost server in the
    container; the client trusting that CA talks to it, the distro's bundle refuses it."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=imagewright test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    (tmp_path / "ext.cnf").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
                                      "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf")
    ca = (tmp_path / "ca.pem").read_text()
    server = (tmp_path / "server.pem").read_text() + (tmp_path / "server.key").read_text()
    code, output = python(engine, prod, f"CA = {ca!r}\nSERVER = {server!r}\n{HANDSHAKE}")
    assert code == 0, output
    assert re.search(r"explicit CA: b'HELLO' TLSv1\.[23]", output), output
    assert "distro bundle: unable to get local issuer certificate" in output, output


def test_time_zones_come_from_the_distros_tzdata(engine: Engine, prod: str) -> None:
    code, output = python(engine, prod, "from datetime import datetime; from zoneinfo import ZoneInfo; "
                                        "print(datetime(2024, 7, 1, tzinfo=ZoneInfo('Europe/Paris'))"
                                        ".utcoffset())")
    assert (code, output.strip()) == (0, "2:00:00"), output


EXTENSIONS = """
import importlib, os, sys
folder = next(p for p in sys.path if p.endswith("lib-dynload"))
names = sorted({f.split(".")[0] for f in os.listdir(folder) if f.endswith(".so")})
for name in names:
    importlib.import_module(name)
print(len(names), "import:", " ".join(names))
"""


def test_every_extension_module_left_imports_and_the_trimmed_ones_are_gone(engine: Engine,
                                                                         prod: str) -> None:
    code, output = python(engine, prod, EXTENSIONS)
    assert code == 0, output
    imported = output.split("import:")[1].split()
    assert {"_ssl", "_hashlib", "_sqlite3", "_ctypes", "_lzma", "_bz2", "_decimal"} <= set(imported)
    assert not {"_dbm", "readline", "_curses", "_curses_panel"} & set(imported)
    # `dbm` still opens a database: it falls back to dbm.dumb.
    code, output = python(engine, prod, "import dbm; db = dbm.open('/dev/shm/x', 'c'); "
                                        "db[b'k'] = b'v'; print(dbm.whichdb('/dev/shm/x'))")
    assert (code, output.strip()) == (0, "dbm.dumb"), output


# ---- byte-code only by default --------------------------------------------------------------------

def test_prod_ships_byte_code_only_but_the_apps_own_sources(engine: Engine, prod: str,
                                                          project: Project) -> None:
    paths = files(engine, prod)
    python_sources = [p for p in paths if p.suffix == ".py"
                      and (p.parts[:2] == ("usr", "lib") or p.parts[:2] == ("opt", "venv"))]
    assert python_sources == [], python_sources[:5]
    assert PurePosixPath("usr/lib/python3.12/os.pyc") in paths  # getpath's landmark
    assert PurePosixPath("app/app.py") in paths
    assert attack_surface(engine, prod, project.layout.image).python_sources == ()


def test_tracebacks_through_byte_code_still_name_file_line_and_function(engine: Engine,
                                                                       prod: str) -> None:
    code, output = python(engine, prod, "import json; json.loads('{')")
    assert code == 1
    assert re.search(r'File "/usr/lib/python3\.12/json/decoder\.py", line \d+, in raw_decode',
                     output), output
    code, output = python(engine, prod, "import flask; flask.request.path")
    assert code == 1
    assert re.search(r'File "/opt/venv/lib/python3\.12/site-packages/werkzeug/local\.py", line \d+, '
                     r"in _get_current_object", output), output


# ---- a C++ manylinux wheel, and `keep` ------------------------------------------------------------

@dataclass(frozen=True)
class WheelImages:
    bytecode: str
    keep: str


@pytest.fixture(scope="module")
def wheel_images(tmp_path_factory: pytest.TempPathFactory, engine: Engine,
                 docker_client: docker.DockerClient) -> Iterator[WheelImages]:
    """backend-flask plus greenlet, as two throwaway services: the default, and `keep`."""
    root = tmp_path_factory.mktemp("sources")
    names = project_root(root, "ps", ("bytecode", "keep"))
    for choice, name in names.items():
        folder = root / "images" / name
        shutil.copytree(SAMPLE, folder)
        with (folder / "requirements.txt").open("a") as requirements:
            requirements.write(f"{WHEEL}\n")
        spec = (folder / "image.yaml").read_text().replace("name: backend-flask", f"name: {name}")
        spec = spec.replace("  flavors: [alpine, distroless]\n",
                            f"  flavors: [distroless]\n  python_sources: {choice}\n")
        (folder / "image.yaml").write_text(spec)
    project = Project(root)
    builder = ImageBuilder(engine, project, QuietProgress(), lambda text: None)
    targets = {choice: project.catalog.flavor(project.service(name), FLAVOR)
               for choice, name in names.items()}
    require_bases(builder, *{ref for t in targets.values() for ref in (t.base, t.builder)})
    try:
        images = {choice: builder.build_target(project.service(names[choice]), target,
                                               primary=True).tags[0]
                  for choice, target in targets.items()}
        yield WheelImages(**images)
    finally:
        remove_images(docker_client, names.values())


CXX_WHEEL = """
import greenlet, re
maps = open("/proc/self/maps").read()
print("greenlet", greenlet.__version__, greenlet._greenlet.__file__)
print(sorted(set(re.findall(r"/(libstdc\\+\\+\\.so[.\\d]*|libgcc_s\\.so[.\\d]*)", maps))))
print(greenlet.greenlet(lambda: 6 * 7).switch())
"""


def test_a_cxx_manylinux_wheel_imports_on_the_trimmed_base(engine: Engine,
                                                           wheel_images: WheelImages) -> None:
    code, output = python(engine, wheel_images.bytecode, CXX_WHEEL)
    assert code == 0, output
    assert "libstdc++.so.6" in output and "libgcc_s.so.1" in output, output
    assert output.strip().endswith("42"), output


def test_keep_ships_the_sources_and_still_imports_from_byte_code(
        engine: Engine, wheel_images: WheelImages, project: Project) -> None:
    surface = attack_surface(engine, wheel_images.keep, project.layout.image)
    assert surface.python_sources == ("stdlib", "packages")
    code, verbose = python(engine, wheel_images.keep, "import json, greenlet, flask", "-v")
    assert code == 0, verbose
    # `-v` says where each module's code object came from: a .pyc that matches, never a .py
    # compiled at start.
    assert re.search(r"code object from '/usr/lib/python3\.12/json/__pycache__/__init__\.cpython-312\.pyc'",
                     verbose), verbose[-2000:]
    assert re.search(r"code object from '/opt/venv/lib/python3\.12/site-packages/flask/__pycache__/"
                     r"__init__\.cpython-312\.pyc'", verbose), verbose[-2000:]
    compiled = re.findall(r"code object from '([^']+\.py)'", verbose)
    assert compiled == [], compiled
    # The default service next to it, built the same way, ships neither.
    assert attack_surface(engine, wheel_images.bytecode, project.layout.image).python_sources == ()
