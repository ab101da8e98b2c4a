"""Built images, for real: dev is debug-rich, prod is slim and hardened, and no build trust leaks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import testinfra

from builder.build.context import build_trust_bundle
from builder.build.images import BuildResult, ImageBuilder
from builder.engine.client import Engine
from builder.engine.containers import run_to_completion, running_service, wait_until_ready
from builder.engine.filesystem import exported_files, files_containing, read_file
from builder.inspect.surface import attack_surface, python_version
from builder.spec.layout import load_layout
from builder.spec.service import VARIANTS
from tests.support.samples import SERVICES

pytestmark = pytest.mark.integration
PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)-----END CERTIFICATE-----", re.S)
PATHS = load_layout(Path(__file__).resolve().parents[2] / "templates").image
PIP_CONFIGS = ("etc/pip.conf", "etc/xdg/pip/pip.conf", ".config/pip/pip.conf", ".pip/pip.conf")


def certificates(bundle: bytes) -> set[bytes]:
    return {b"".join(body.split()) for body in PEM.findall(bundle)}


@pytest.fixture(scope="module", params=SERVICES)
def dev_host(request: pytest.FixtureRequest, built: dict[tuple[str, str], BuildResult],
             engine: Engine, project) -> Iterator[testinfra.host.Host]:
    service = project.service(request.param)
    image = built[(request.param, "dev")].tags[0]
    with running_service(engine, image, service.port, hardened=False,
                         purpose="test") as running:
        wait_until_ready(running, service.health_path, timeout=60)
        yield testinfra.get_host(f"docker://{running.container.id}")


def test_dev_has_a_shell_and_the_2am_tools(dev_host: testinfra.host.Host,
                                           docker_client: docker.DockerClient) -> None:
    assert dev_host.file("/bin/bash").exists
    assert dev_host.run("echo $0").succeeded
    for command in ("curl", "jq", "less", "vi", "htop", "strace", "lsof", "ip", "ping", "dig",
                    "nc", "tcpdump", "ps", "ipython", "pytest", "pip", "py-spy"):
        assert dev_host.exists(command), command
    assert dev_host.run("python -c 'import debugpy'").succeeded
    assert dev_host.user().uid == 10001
    # The dev command itself is PID 1 (exec'd, no shell or wrapper left): `flask …`, `uvicorn …`,
    # `python manage.py runserver …`, each run by the venv's interpreter.
    command = docker_client.containers.get(dev_host.backend.name).attrs["Config"]["Cmd"]
    args = dev_host.process.get(pid=1).args.split()
    assert args[1 - len(command):] == command[1:], (args, command)
    assert Path(args[-len(command)]).name == Path(command[0]).name, (args, command)


def test_dev_source_is_under_app_for_bind_mounting(dev_host: testinfra.host.Host) -> None:
    assert dev_host.file("/app").is_directory
    assert dev_host.file("/opt/venv/bin/python").exists  # outside /app: a bind mount keeps the venv


@pytest.mark.parametrize("service", SERVICES)
def test_prod_attack_surface_is_small(service: str, built: dict[tuple[str, str], BuildResult],
                                      engine: Engine) -> None:
    result = built[(service, "prod")]
    surface = attack_surface(engine, result.tags[0], PATHS)
    assert re.fullmatch(r"\d+:\d+", surface.user) and not surface.runs_as_root
    assert surface.compilers == ()
    assert surface.package_caches == ()
    assert not surface.pip_module
    assert not any(path.endswith(("/pip", "/pip3")) for path in surface.package_managers)
    assert surface.setuid_files == ()
    if result.target.flavor == "distroless":
        assert surface.shells == ()
        assert surface.package_managers == ()


@pytest.mark.parametrize("service", SERVICES)
def test_prod_answers_health_when_hardened(service: str, built: dict[tuple[str, str], BuildResult],
                                           engine: Engine, project) -> None:
    spec = project.service(service)
    with running_service(engine, built[(service, "prod")].tags[0], spec.port,
                         hardened=True, env={"OTEL_SDK_DISABLED": "true"}, purpose="test") as running:
        running.container.reload()
        host_config = running.container.attrs["HostConfig"]
        assert host_config["ReadonlyRootfs"] is True
        assert host_config["CapDrop"] == ["ALL"]
        assert host_config["SecurityOpt"] == ["no-new-privileges"]
        wait_until_ready(running, spec.health_path, timeout=60)
        top = running.container.top()
        uids = {row[top["Titles"].index("UID")] for row in top["Processes"]}
        assert "root" not in uids and "0" not in uids


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_no_build_trust_or_pip_config_in_the_image(
        service: str, variant: str, built: dict[tuple[str, str], BuildResult],
        docker_client: docker.DockerClient, engine: Engine) -> None:
    image = built[(service, variant)].tags[0]
    # The image's bundle is the distro's own, byte for byte.
    distro_bundle = read_file(engine, "ubuntu:24.04", "/etc/ssl/certs/ca-certificates.crt")
    image_bundle = read_file(engine, image, "/etc/ssl/certs/ca-certificates.crt")
    assert image_bundle and len(certificates(image_bundle)) > 100
    assert certificates(image_bundle) == certificates(distro_bundle or b"")
    # The build machine's extra trust (here: the TLS-intercepting proxy's CA) is nowhere in it.
    extra = certificates(build_trust_bundle()) - certificates(distro_bundle or b"")
    extra -= certificates(read_file(engine, image,
                                    "/opt/venv/lib/python3.12/site-packages/certifi/cacert.pem")
                          or b"")
    host_extra = [p.read_bytes() for p in Path("/usr/local/share/ca-certificates").glob("*.crt")]
    extra |= {cert for bundle in host_extra for cert in certificates(bundle)}
    assert extra, "this machine's build trust has no extra CA, so there is nothing to prove"
    needles = [cert[:64] for cert in extra]
    assert files_containing(engine, image, needles) == []
    names = {member.name for member in exported_files(engine, image)}
    assert not [name for name in names if name.endswith(PIP_CONFIGS)]
    env = docker_client.api.inspect_image(image)["Config"]["Env"]
    assert not [entry for entry in env if entry.startswith("PIP_")]
    history = " ".join(layer["CreatedBy"] for layer in docker_client.api.history(image))
    assert "ca-bundle" not in history and "PIP_CERT" not in history


@pytest.mark.parametrize("service", SERVICES)
def test_dev_and_prod_run_the_same_python_minor(service: str,
                                                built: dict[tuple[str, str], BuildResult],
                                                engine: Engine) -> None:
    dev = python_version(engine, built[(service, "dev")].tags[0], PATHS)
    prod = python_version(engine, built[(service, "prod")].tags[0], PATHS)
    assert dev and dev.split(".")[:2] == prod.split(".")[:2]


@pytest.mark.parametrize("service", SERVICES)
def test_labels_record_variant_flavor_and_base_provenance(
        service: str, built: dict[tuple[str, str], BuildResult],
        docker_client: docker.DockerClient) -> None:
    result = built[(service, "prod")]
    labels = docker_client.images.get(result.tags[0]).labels
    assert labels["io.imagewright.variant"] == "prod"
    assert labels["io.imagewright.flavor"] == result.target.flavor
    assert labels["org.opencontainers.image.base.name"] == result.target.base
    assert labels["org.opencontainers.image.base.digest"].startswith("sha256:")
    assert labels["io.imagewright.base.provenance"] not in ("", "unknown")
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"])


@pytest.mark.parametrize("service", SERVICES)
def test_prod_is_smaller_than_dev(service: str, built: dict[tuple[str, str], BuildResult]) -> None:
    assert built[(service, "prod")].size < built[(service, "dev")].size


def test_distroless_debug_twin_is_the_prod_image_plus_busybox(
        built: dict[tuple[str, str], BuildResult], image_builder: ImageBuilder,
        docker_client: docker.DockerClient, engine: Engine, project) -> None:
    service = project.service("backend-flask")
    prod = built[("backend-flask", "prod")]
    if prod.target.flavor != "distroless":  # where alpine is preferred and present
        flavor = image_builder.choose_flavors(service, "distroless").build[0]
        prod = image_builder.build_target(service, flavor, primary=False)
    twin = image_builder.build_debug_twin(service, prod)
    assert twin.tags[0] == "backend-flask:prod-distroless-debug"
    prod_image, twin_image = (docker_client.api.inspect_image(r.image_id) for r in (prod, twin))
    prod_layers, twin_layers = prod_image["RootFS"]["Layers"], twin_image["RootFS"]["Layers"]
    assert twin_layers[:-1] == prod_layers, "the twin must carry exactly the prod layers, plus one"
    for key in ("Entrypoint", "Cmd", "User", "Healthcheck", "WorkingDir", "ExposedPorts"):
        assert twin_image["Config"][key] == prod_image["Config"][key], key
    assert twin_image["Config"]["Labels"]["io.imagewright.debug-twin-of"] == "backend-flask:prod-distroless"

    code, output = run_to_completion(engine, twin.image_id, ["/busybox/sh", "-c"],
                                     ['id -u; ls /app; readlink /busybox/wget; echo "$PATH"'])
    assert code == 0, output
    uid, *listing, applet, path = output.split()
    assert uid == "65532" and "app.py" in listing
    assert applet == "/busybox/busybox" and path.endswith(":/busybox")
    assert attack_surface(engine, prod.image_id, PATHS).shells == (), "the prod image stays shell-less"

    with running_service(engine, twin.image_id, service.port, hardened=True,
                         env={"OTEL_SDK_DISABLED": "true"}, purpose="test") as running:
        wait_until_ready(running, service.health_path, timeout=60)
