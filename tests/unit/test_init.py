"""`init`: the detectors on small app folders made here (Flask, FastAPI, Django; requirements,
pyproject, uv.lock, poetry.lock; Procfile, Dockerfile EXPOSE/CMD; an app's own OpenTelemetry
setup), the spec it writes (valid, no secrets), and that it never overwrites a spec without
--force. No engine: the build context's ignore rules are docker-py's own matching."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from builder.init.detect import GUNICORN, UVICORN_WORKER, guess, iter_checks
from builder.project import Project
from builder.spec.service import load_spec
from tests.support.samples import FLAVORS, SERVICES

ROOT = Path(__file__).resolve().parents[2]
POETRY_APP = ROOT / "tests" / "fixtures" / "poetry-app"
PLANTED_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"  # a made-up value that must never be copied

FLASK_APP = '''\
import os
from flask import Flask
from opentelemetry import trace

app = Flask(__name__)
tracer = trace.get_tracer(__name__)
STRIPE = os.environ["STRIPE_KEY"]


@app.route("/healthz")
def health():
    return "ok"


@app.get("/api/items")
def items():
    with tracer.start_as_current_span("items.load"):
        return {"items": []}


@app.route("/api/items/<int:item_id>")
def item(item_id):
    return {}


@app.route("/api/items", methods=["POST"])
def create():
    return {}


@app.get("/api/boom")
def boom():
    raise RuntimeError("boom")


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8081)
'''

FASTAPI_APP = '''\
from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping():
    return {"ok": True}


@app.get("/api/users")
async def users():
    return []
'''

OWN_OTEL = '''\
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def setup(app):
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(app)
'''


def make_app(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def django_files(project: str = "mysite", static_root: bool = True) -> dict[str, str]:
    settings = "INSTALLED_APPS = ['django.contrib.staticfiles']\nSTATIC_URL = 'static/'\n"
    if static_root:
        settings += "STATIC_ROOT = BASE_DIR / 'staticfiles'\n"
    return {
        "manage.py": "import os, sys\n\ndef main():\n    os.environ.setdefault("
                     f"'DJANGO_SETTINGS_MODULE', '{project}.settings')\n",
        f"{project}/__init__.py": "",
        f"{project}/settings.py": "import os\nSECRET_KEY = os.environ.get('DJANGO_SECRET_KEY')\n"
                                  + settings,
        f"{project}/wsgi.py": "from django.core.wsgi import get_wsgi_application\n"
                              "application = get_wsgi_application()\n",
        f"{project}/urls.py": "from django.urls import path, include\nfrom shop import views\n"
                              "urlpatterns = [\n    path('health/', views.health),\n"
                              "    path('api/orders/', views.orders),\n"
                              "    path('api/orders/<int:pk>/', views.order),\n"
                              "    path('admin/', include('x.urls')),\n]\n",
        "shop/__init__.py": "",
        "shop/views.py": "def health(request):\n    return None\n\n"
                         "def orders(request):\n    with tracer.start_as_current_span('orders.list'):\n"
                         "        return None\n\ndef order(request, pk):\n    return None\n",
    }


# ---- frameworks, app objects, commands -------------------------------------------------------------

def test_flask_app_routes_port_from_code_and_a_server_added(tmp_path: Path) -> None:
    folder = make_app(tmp_path, {"app.py": FLASK_APP, "requirements.txt": "flask==3.1.3\n"})
    result = guess(folder, "shop")
    assert result.app is not None and (result.app.framework, result.app.target) == ("flask", "app:app")
    assert result.port.value == "8081" and "run(port=" in result.port.source
    assert result.health is not None and result.health.value == "/healthz"
    # GET routes without parameters, POST-only and parametrized ones left out; a raise → 500.
    assert [(r.path, r.status, r.spans) for r in result.smoke] == [
        ("/api/items", 200, ("items.load",)), ("/api/boom", 500, ())]
    assert result.server is None and result.added_packages == (GUNICORN,)
    assert result.prod_command[0] == "gunicorn" and result.prod_command[-1] == "app:app"
    assert "--bind=0.0.0.0:8081" in result.prod_command
    assert result.dev_command[:4] == ("flask", "--app", "app:app", "run")
    assert [found.value for found in result.env_names] == ["STRIPE_KEY"]


def test_flask_factory_is_called_by_gunicorn(tmp_path: Path) -> None:
    folder = make_app(tmp_path, {
        "web/__init__.py": "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n",
        "requirements.txt": "flask\ngunicorn\n"})
    result = guess(folder, "web")
    assert result.app is not None and result.app.factory
    assert result.prod_command[-1] == "web:create_app()" and result.added_packages == ()


def test_fastapi_without_a_server_gets_uvicorn_workers_under_gunicorn(tmp_path: Path) -> None:
    folder = make_app(tmp_path, {"main.py": FASTAPI_APP, "requirements.txt": "fastapi\n"})
    result = guess(folder, "users")
    assert result.app is not None and result.app.interface == "asgi"
    assert result.added_packages == (GUNICORN, UVICORN_WORKER)
    assert "--worker-class=uvicorn_worker.UvicornWorker" in result.prod_command
    assert result.prod_command[-1] == "main:app"
    assert result.dev_command[:2] == ("uvicorn", "main:app") and "--reload" in result.dev_command
    assert result.port.value == "8000" and result.health is not None
    assert result.health.value == "/ping"


def test_fastapi_with_uvicorn_declared_runs_uvicorn(tmp_path: Path) -> None:
    folder = make_app(tmp_path, {"main.py": FASTAPI_APP,
                                 "requirements.txt": "fastapi==0.115.12\nuvicorn[standard]==0.34\n"})
    result = guess(folder, "users")
    assert result.server is not None and result.server.value == "uvicorn"
    assert result.prod_command[:2] == ("uvicorn", "main:app") and result.added_packages == ()


def test_django_project_from_manage_py(tmp_path: Path) -> None:
    folder = make_app(tmp_path, {**django_files(), "requirements.txt": "Django>=5\ngunicorn\n"})
    result = guess(folder, "shop")
    assert result.app is not None
    assert (result.app.framework, result.app.target) == ("django", "mysite.wsgi:application")
    assert result.env == (("DJANGO_SETTINGS_MODULE", "mysite.settings"),)
    assert result.build_commands == (("python", "manage.py", "collectstatic", "--noinput"),)
    assert result.health is not None and result.health.value == "/health/"
    # Django's http.route is the URL pattern, without a leading slash.
    assert [(r.path, r.route, r.spans) for r in result.smoke] == [
        ("/api/orders/", "api/orders/", ("orders.list",))]
    assert result.dev_command == ("python", "manage.py", "runserver", "0.0.0.0:8000")
    assert "DJANGO_SECRET_KEY" in [found.value for found in result.env_names]


def test_django_without_static_root_runs_no_collectstatic(tmp_path: Path) -> None:
    folder = make_app(tmp_path, {**django_files(static_root=False), "requirements.txt": "django\n"})
    result = guess(folder, "shop")
    assert result.build_commands == () and result.added_packages == (GUNICORN,)


# ---- dependencies ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("files", "expected"), [
    ({"requirements.txt": "flask\n", "requirements-dev.txt": "pytest\n"},
     ("requirements.txt", None, None)),
    ({"requirements/prod.txt": "flask\n", "requirements/dev.txt": "pytest\n"},
     ("requirements/prod.txt", None, None)),
    ({"pyproject.toml": '[project]\nname = "a"\nversion = "1"\ndependencies = ["flask"]\n'},
     (None, "pyproject.toml", None)),
    ({"pyproject.toml": '[project]\nname = "a"\nversion = "1"\ndependencies = ["flask"]\n',
      "uv.lock": "version = 1\n", "requirements.txt": "flask\n"},
     (None, "pyproject.toml", "uv.lock")),
    ({"pyproject.toml": POETRY_APP / "pyproject.toml", "poetry.lock": POETRY_APP / "poetry.lock"},
     (None, "pyproject.toml", "poetry.lock")),
], ids=["requirements", "requirements-folder", "pyproject", "uv-lock-first", "poetry-lock"])
def test_dependency_files_are_found(tmp_path: Path, files: dict[str, str | Path],
                                    expected: tuple[str | None, str | None, str | None]) -> None:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, tmp_path / name)
        else:
            (tmp_path / name).write_text(content)
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    deps = guess(tmp_path, "a").dependencies
    assert (deps.requirements, deps.pyproject, deps.lock) == expected
    assert "flask" in deps.packages


# ---- ports --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("files", "port", "source"), [
    ({"Procfile": "web: gunicorn app:app --bind 0.0.0.0:7000 --workers 3\n"}, "7000", "Procfile:1"),
    ({"Dockerfile": "FROM python:3.12-slim\nCOPY . .\nEXPOSE 9000\nCMD [\"gunicorn\", \"-b\", "
                    "\"0.0.0.0:9100\", \"app:app\"]\n",
      "Procfile": "web: gunicorn app:app -b :7000\n"}, "9000", "Dockerfile:3 EXPOSE"),
    ({"Dockerfile": "FROM python:3.12-slim\nCMD [\"gunicorn\", \"--bind=0.0.0.0:9100\", "
                    "\"app:app\"]\n"}, "9100", "Dockerfile:2 CMD"),
    ({"Procfile": "web: gunicorn app:app --bind 0.0.0.0:$PORT\n"}, "5000", "Flask default"),
], ids=["procfile", "dockerfile-expose-first", "dockerfile-cmd", "procfile-env-port"])
def test_port_from_the_apps_own_deployment(tmp_path: Path, files: dict[str, str], port: str,
                                          source: str) -> None:
    make_app(tmp_path, {"app.py": "from flask import Flask\napp = Flask(__name__)\n",
                        "requirements.txt": "flask\n", **files})
    found = guess(tmp_path, "a").port
    assert (found.value, found.source) == (port, source)


# ---- the app's own OpenTelemetry ---------------------------------------------------------------------

def test_own_opentelemetry_setup_is_found_and_said(tmp_path: Path) -> None:
    folder = make_app(tmp_path, {"app.py": FLASK_APP, "telemetry.py": OWN_OTEL,
                                 "requirements.txt": "flask\n"})
    result = guess(folder, "a")
    assert {found.value for found in result.otel_setup} >= {
        "TracerProvider", "set_tracer_provider", "OTLPSpanExporter", "instrument_app"}
    assert all(found.source.startswith("telemetry.py:") for found in result.otel_setup)
    assert any("sets up OpenTelemetry itself" in check and "dead code" in check
               for check in iter_checks(result))


def test_api_use_alone_is_not_an_own_setup(tmp_path: Path) -> None:
    folder = make_app(tmp_path, {"app.py": FLASK_APP, "requirements.txt": "flask\n"})
    assert guess(folder, "a").otel_setup == ()


# ---- the samples: init finds what their hand-written specs say ---------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_init_on_a_sample_finds_its_routes_health_and_dependencies(project: Project, service: str,
                                                                   tmp_path: Path) -> None:
    spec = project.service(service)
    app = tmp_path / "app"
    shutil.copytree(spec.directory, app, ignore=shutil.ignore_patterns("image.yaml"))
    result = guess(app, service)
    assert result.health is not None and result.health.value == spec.health_path
    assert [(r.path, r.route, r.status) for r in result.smoke] == [
        (s.path, s.route, s.status) for s in spec.smoke]
    declared = result.dependencies
    assert (declared.requirements or declared.pyproject) == spec.dependencies.declared_in
    assert declared.lock == spec.dependencies.lock
    assert result.added_packages == ()  # every sample declares its server
    assert result.server is not None and result.server.value == spec.prod.command[0]


# ---- the CLI: what it writes, and what it refuses ---------------------------------------------------

def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder", "-C", str(root), *args],
                          capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def temp_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for folder in ("templates", "build"):
        shutil.copytree(ROOT / folder, root / folder)
    (root / "images").mkdir()
    return root


def test_init_writes_a_valid_spec_without_secrets_and_refuses_to_overwrite(
        temp_project: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path / "shop", {
        "app.py": FLASK_APP, "telemetry.py": OWN_OTEL, "requirements.txt": "flask==3.1.3\n",
        ".env": f"STRIPE_KEY={PLANTED_KEY}\n", "deploy/id_rsa": "not a real key\n",
        "tests/test_app.py": "def test(): pass\n", ".git/config": "[core]\n",
        "Dockerfile": f"FROM python:3.12-slim\nENV STRIPE_KEY={PLANTED_KEY}\nCOPY . .\n"})
    first = cli(temp_project, "init", str(app), "--name", "shop")
    assert first.returncode == 0, first.stdout + first.stderr
    folder = temp_project / "images" / "shop"
    spec = load_spec(folder, FLAVORS, temp_project)
    assert spec.prod.pip_packages == (GUNICORN,) and spec.prod.command[0] == "gunicorn"
    assert spec.health_path == "/healthz" and spec.port == 8081
    text = (folder / "image.yaml").read_text()
    assert PLANTED_KEY not in text and "STRIPE_KEY" in text  # the name is said, never the value
    assert yaml.safe_load(text)["name"] == "shop"
    copied = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert {"app.py", "telemetry.py", "requirements.txt", "image.yaml", "Dockerfile"} <= copied
    assert not {".env", "deploy/id_rsa", ".git/config"} & copied
    assert (temp_project / "build" / "shop" / "Dockerfile.dev").is_file()  # rendered too
    assert "sets up OpenTelemetry itself" in first.stdout and "not copied" in first.stdout
    assert "STRIPE_KEY" in first.stdout and PLANTED_KEY not in first.stdout

    # A second init is refused and changes nothing; --force replaces the spec.
    (folder / "image.yaml").write_text(text + "# edited by hand\n")
    again = cli(temp_project, "init", str(app), "--name", "shop")
    assert again.returncode == 2
    assert again.stderr.strip().endswith("a spec exists already (init never overwrites one; pass "
                                         "--force to replace it)")
    assert "Traceback" not in again.stderr
    assert (folder / "image.yaml").read_text().endswith("# edited by hand\n")
    forced = cli(temp_project, "init", str(app), "--name", "shop", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "replaced" in forced.stdout
    assert not (folder / "image.yaml").read_text().endswith("# edited by hand\n")
    assert not [p for p in (temp_project / "images").iterdir() if p.name.startswith(".init-")]


def test_init_in_place_writes_only_the_spec(temp_project: Path) -> None:
    folder = make_app(temp_project / "images" / "users",
                      {"main.py": FASTAPI_APP, "requirements.txt": "fastapi\nuvicorn\n"})
    before = sorted(path.name for path in folder.iterdir())
    result = cli(temp_project, "init", str(folder), "--name", "users")
    assert result.returncode == 0, result.stderr
    assert "in place" in result.stdout
    assert sorted(path.name for path in folder.iterdir()) == sorted([*before, "image.yaml"])
    assert cli(temp_project, "init", str(folder), "--name", "users").returncode == 2


def test_init_of_a_missing_folder_is_one_line(temp_project: Path, tmp_path: Path) -> None:
    result = cli(temp_project, "init", str(tmp_path / "nope"), "--name", "x")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: init: {tmp_path / 'nope'}: no such folder"


def test_init_of_a_folder_without_python_is_one_line_and_writes_nothing(temp_project: Path,
                                                                        tmp_path: Path) -> None:
    empty = make_app(tmp_path / "docs-only", {"README.md": "# nothing to run\n"})
    result = cli(temp_project, "init", str(empty), "--name", "docs")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: init: {empty}: no Python source found to build an "
                                     "image from")
    assert list((temp_project / "images").iterdir()) == []


def test_a_plain_script_is_run_as_it_is(tmp_path: Path) -> None:
    folder = make_app(tmp_path, {"server.py": "import http.server\n", "requirements.txt": "\n"})
    result = guess(folder, "plain")
    assert result.app is None and result.dev_command == result.prod_command == ("python", "server.py")
    assert any("no Flask, FastAPI, Starlette or Django app found" in check
               for check in iter_checks(result))
