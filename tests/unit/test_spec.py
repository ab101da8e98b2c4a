"""image.yaml loading: the samples load; bad input is one SpecError naming file, key and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.core.errors import SpecError
from builder.project import Project
from builder.spec.catalog import DockerfileRecipe
from builder.spec.service import load_spec
from tests.support.samples import FLAVORS, MINIMAL_SPEC


def test_sample_services_load(project: Project) -> None:
    flask = project.service("backend-flask")
    assert flask.port == 4567
    assert flask.health_path == "/api/health"
    assert flask.prod.flavors == ("alpine", "distroless")
    assert flask.prod.command[0] == "gunicorn"
    assert flask.sources == ("app.py", "services")
    assert [s.route for s in flask.smoke] == ["/api/activities/home", "/api/fail"]
    assert {s.name for s in project.services()} == {"backend-flask", "backend-fastapi",
                                                    "backend-django"}
    django = project.service("backend-django")
    assert django.dependencies.form == "pyproject.toml + uv.lock" and django.dependencies.locked
    assert django.build_commands == (("python", "manage.py", "collectstatic", "--noinput"),)
    assert flask.dependencies.form == "requirements.txt" and not flask.dependencies.locked


def write_service(tmp_path: Path, text: str, name: str = "svc") -> Path:
    folder = tmp_path / "images" / name
    folder.mkdir(parents=True)
    (folder / "app.py").write_text("app = None\n")
    (folder / "requirements.txt").write_text("flask\n")
    (folder / "image.yaml").write_text(text)
    return folder


VALID = MINIMAL_SPEC


def test_minimal_spec_loads_with_defaults(tmp_path: Path) -> None:
    spec = load_spec(write_service(tmp_path, VALID), FLAVORS, tmp_path)
    assert spec.version == "0.0.0"
    assert spec.dev.apt_packages == ()
    assert spec.smoke == ()
    assert spec.spec_file == "images/svc/image.yaml"


def test_error_names_file_key_and_line(tmp_path: Path) -> None:
    text = VALID.replace("port: 8080", "port: 99999")
    with pytest.raises(SpecError) as caught:
        load_spec(write_service(tmp_path, text), FLAVORS, tmp_path)
    assert str(caught.value) == "images/svc/image.yaml:2: port: 99999 is out of range 1..65535"


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    text = VALID.replace("health:", "helth:")
    with pytest.raises(SpecError, match=r"helth: unknown key \(did you mean 'health'\?\)"):
        load_spec(write_service(tmp_path, text), FLAVORS, tmp_path)


def test_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    folder = write_service(tmp_path, VALID.replace("[app.py]", "[app.py, data]"))
    (tmp_path / "outside").mkdir()
    (folder / "data").symlink_to(tmp_path / "outside")
    with pytest.raises(SpecError, match=r"sources\[1\]: 'data' points outside the service folder"):
        load_spec(folder, FLAVORS, tmp_path)


def test_symlink_inside_a_source_dir_leading_outside_is_refused(tmp_path: Path) -> None:
    folder = write_service(tmp_path, VALID.replace("[app.py]", "[app.py, pkg]"))
    (folder / "pkg").mkdir()
    (folder / "pkg" / "secrets").symlink_to("/etc")
    with pytest.raises(SpecError, match="contains a symlink leading outside"):
        load_spec(folder, FLAVORS, tmp_path)


def test_sample_folder_copied_elsewhere_still_loads(tmp_path: Path, project: Project) -> None:
    shutil.copytree(project.images_dir / "backend-flask", tmp_path / "backend-flask")
    assert load_spec(tmp_path / "backend-flask", FLAVORS).name == "backend-flask"


def test_health_is_optional_and_then_nothing_is_excluded_from_tracing(tmp_path: Path) -> None:
    spec = load_spec(write_service(tmp_path, VALID.replace("health: /health\n", "")), FLAVORS,
                     tmp_path)
    assert spec.health_path is None
    assert spec.untraced_urls == ()


def test_the_health_path_is_excluded_from_tracing(project: Project) -> None:
    flask = project.service("backend-flask")
    assert flask.untraced_urls == ("api/health",)


def test_a_smoke_route_on_the_health_path_is_refused_saying_why(tmp_path: Path) -> None:
    text = VALID + "smoke:\n  - {path: /health, route: /health}\n"
    with pytest.raises(SpecError) as caught:
        load_spec(write_service(tmp_path, text), FLAVORS, tmp_path)
    message = str(caught.value)
    assert message.startswith("images/svc/image.yaml:9: smoke[0].route: '/health' is the health "
                              "path (/health), which is excluded from tracing")
    assert "no span would ever arrive" in message and "\n" not in message


def test_the_health_path_may_be_smoked_for_its_status_only(tmp_path: Path) -> None:
    text = VALID + "smoke:\n  - {path: /health, status: 200}\n"
    assert load_spec(write_service(tmp_path, text), FLAVORS, tmp_path).smoke[0].route is None


def test_otel_mode_defaults_to_the_wrapper(tmp_path: Path) -> None:
    spec = load_spec(write_service(tmp_path, VALID), FLAVORS, tmp_path)
    assert spec.otel.mode == "auto" and spec.otel.wrapper


def test_otel_mode_app_and_prod_pip_packages(tmp_path: Path) -> None:
    text = VALID.replace("flavors: [distroless]}",
                         "flavors: [distroless], pip_packages: ['gunicorn>=23', uvicorn]}")
    spec = load_spec(write_service(tmp_path, text + "otel: {mode: app}\n"), FLAVORS, tmp_path)
    assert spec.otel.mode == "app" and not spec.otel.wrapper
    assert spec.prod.pip_packages == ("gunicorn>=23", "uvicorn")


def test_unknown_otel_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"image.yaml:8: otel.mode: 'manual' is not one of auto, app"):
        load_spec(write_service(tmp_path, VALID + "otel: {mode: manual}\n"), FLAVORS, tmp_path)


def test_prod_python_sources_default_to_byte_code_only(tmp_path: Path, project: Project) -> None:
    spec = load_spec(write_service(tmp_path, VALID), FLAVORS, tmp_path)
    assert spec.prod.python_sources == "bytecode"
    catalog = project.catalog
    # Byte-code only builds on the flavor's own base.
    assert catalog.flavor(spec, "distroless").base == catalog.flavors["distroless"].base


def test_keeping_python_sources_builds_on_the_base_with_stdlib_sources(tmp_path: Path,
                                                                       project: Project) -> None:
    text = VALID.replace("flavors: [distroless]}", "flavors: [distroless, alpine], "
                                                   "python_sources: keep}")
    spec = load_spec(write_service(tmp_path, text), FLAVORS, tmp_path)
    assert spec.prod.python_sources == "keep"
    catalog = project.catalog
    distroless = catalog.flavors["distroless"]
    assert distroless.base_with_sources is not None
    assert catalog.flavor(spec, "distroless").base == distroless.base_with_sources
    assert [t.base for t in catalog.targets(spec)][1] == distroless.base_with_sources
    # The -sources base is the same recipe with the stdlib's sources kept.
    plain, kept = catalog.bases[distroless.base].recipe, catalog.bases[distroless.base_with_sources].recipe
    assert isinstance(plain, DockerfileRecipe) and isinstance(kept, DockerfileRecipe)
    assert plain.template == kept.template and plain.values == kept.values
    assert (dict(plain.settings), dict(kept.settings)) == ({}, {"stdlib_sources": True})
    # Alpine's apk Python keeps its stdlib sources either way: same base.
    assert catalog.flavor(spec, "alpine").base == catalog.flavors["alpine"].base


def test_an_unknown_python_sources_value_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("flavors: [distroless]}", "flavors: [distroless], python_sources: source}")
    with pytest.raises(SpecError, match=r"image.yaml:\d+: prod.python_sources: 'source' is not "
                                        r"one of bytecode, keep"):
        load_spec(write_service(tmp_path, text), FLAVORS, tmp_path)
