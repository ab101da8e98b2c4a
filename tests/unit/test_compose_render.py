"""build/compose.yaml, the dev loop's Compose file: rendered from every spec, committed, current."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from builder import naming
from builder.cli.dev import host_ports
from builder.cli.main import main
from builder.core.errors import UserError
from builder.project import Project
from builder.render.compose import compose_file
from builder.render.dockerfiles import stale_files


def rendered(project: Project) -> dict:
    return yaml.safe_load(compose_file(project.renderer, project.services(), project.build_dir).text)


def test_the_committed_file_is_current(project: Project) -> None:
    assert stale_files([compose_file(project.renderer, project.services(), project.build_dir)]) == []


def test_every_service_runs_its_dev_image_the_way_a_developer_works(project: Project) -> None:
    compose = rendered(project)
    assert set(compose["services"]) == {spec.name for spec in project.services()}
    for spec in project.services():
        service = compose["services"][spec.name]
        assert service["image"] == f"{spec.name}:dev"
        [mount] = service["volumes"]
        assert mount["type"] == "bind" and mount["target"] == project.layout.image.app
        assert (project.build_dir / mount["source"]).resolve() == spec.directory.resolve()
        assert not Path(mount["source"]).is_absolute(), "the same file in every checkout"
        assert service["ports"] == [f"127.0.0.1:${{{naming.port_variable(spec.name)}:-{spec.port}}}"
                                    f":{spec.port}"]
        assert set(service["cap_add"]) == {"SYS_PTRACE", "NET_ADMIN", "NET_RAW"}
        assert service["extra_hosts"] == [f"{naming.HOST_ALIAS}:host-gateway"]
        env = service["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
            f"http://{naming.HOST_ALIAS}:${{{naming.RECEIVER_PORT_VARIABLE}:-4318}}")
        assert env["HONEYCOMB_API_KEY"] == "${HONEYCOMB_API_KEY:-}", "never a key in the file"
        assert service["labels"][naming.MANAGED_LABEL] == "1"
        assert service["labels"][naming.RUN_LABEL] == f"${{{naming.RUN_VARIABLE}:-compose}}"
    network = compose["networks"]["default"]["labels"]
    assert network[naming.MANAGED_LABEL] == "1"
    assert network[naming.RUN_LABEL] == f"${{{naming.RUN_VARIABLE}:-compose}}"


def test_render_writes_it_and_check_fails_without_it(project: Project, tmp_path: Path) -> None:
    for folder in ("images", "templates", "build"):
        shutil.copytree(project.root / folder, tmp_path / folder)
    path = naming.compose_path(tmp_path / "build")
    path.unlink()
    assert main(["-C", str(tmp_path), "render", "--check"]) == 1
    assert main(["-C", str(tmp_path), "render"]) == 0
    assert path.read_text() == naming.compose_path(project.build_dir).read_text()
    assert main(["-C", str(tmp_path), "render", "--check"]) == 0


def test_port_variables_and_project_names() -> None:
    assert naming.port_variable("backend-flask") == "IMAGEWRIGHT_PORT_BACKEND_FLASK"
    assert naming.port_variable("api.v2") == "IMAGEWRIGHT_PORT_API_V2"
    one, other = naming.compose_project(Path("/a/My Project")), naming.compose_project(Path("/b/My Project"))
    assert one.startswith("imagewright-my-project-") and other.startswith("imagewright-my-project-")
    assert one != other, "two checkouts never share a Compose project"
    assert naming.compose_project(Path("/a/My Project")) == one


def test_dev_refuses_a_stale_compose_file_in_one_line(project: Project, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for folder in ("images", "templates", "build"):
        shutil.copytree(project.root / folder, tmp_path / folder)
    path = naming.compose_path(tmp_path / "build")
    path.write_text(path.read_text().replace("SYS_PTRACE, ", ""))
    assert main(["-C", str(tmp_path), "dev"]) == 2
    assert capsys.readouterr().err.strip() == \
        "error: build/compose.yaml is not current: run `make render`"


def test_host_ports_default_to_the_services_and_take_the_variables(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = project.services()
    assert host_ports(specs) == {spec.name: spec.port for spec in specs}
    monkeypatch.setenv(naming.port_variable(specs[0].name), "15000")
    assert host_ports(specs)[specs[0].name] == 15000
    monkeypatch.setenv(naming.port_variable(specs[0].name), "99999")
    with pytest.raises(UserError, match=r"IMAGEWRIGHT_PORT_\w+='99999': not a port number"):
        host_ports(specs)
