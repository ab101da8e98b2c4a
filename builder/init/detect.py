"""Inspect an existing Python service's folder and guess its spec: pure functions over files.

Nothing here runs the app or imports it: Python files are read with `ast`, the rest as text. Each
guess keeps where it came from (`app.py:12`, `Procfile`, `Dockerfile:7`, "Flask's default"), so
`init` can say what it guessed and what to check.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name

from builder.core.errors import SpecError
from builder.spec.dependencies import (
    POETRY_LOCK,
    UV_LOCK,
    read_pyproject,
    requirement_names,
)

# Production servers `init` adds when the app declares none, pinned like the samples' own.
GUNICORN = "gunicorn==23.0.0"
UVICORN_WORKER = "uvicorn-worker==0.4.0"  # uvicorn's worker class for gunicorn (brings uvicorn)
WSGI_SERVERS = ("gunicorn", "waitress", "uwsgi")
ASGI_SERVERS = ("uvicorn", "hypercorn", "daphne", "granian")
FRAMEWORKS = {"flask": "wsgi", "django": "wsgi", "fastapi": "asgi", "starlette": "asgi"}
DEFAULT_PORTS = {"flask": 5000, "django": 8000, "fastapi": 8000, "starlette": 8000}
# Folders that are not the app (tests and docs stay out of images and out of route guessing).
NOT_SOURCE_DIRS = {"tests", "test", "docs", "doc", "node_modules", "venv", "env", "build", "dist",
                   "htmlcov", "site-packages", "__pycache__"}
# Top-level files that are not the app's source: dependency and deployment files, tooling.
NOT_SOURCE_FILES = {"Dockerfile", "Procfile", "Makefile", "image.yaml", "pyproject.toml",
                    "setup.py", "setup.cfg", "tox.ini", "noxfile.py", "conftest.py", UV_LOCK,
                    POETRY_LOCK, "Pipfile", "Pipfile.lock"}
SOURCE_SUFFIXES = (".py", ".ini", ".cfg", ".json", ".yaml", ".yml")
HEALTH_NAMES = {"health", "healthz", "healthcheck", "health-check", "health_check", "ping",
                "status", "ready", "readyz", "live", "livez", "alive"}
# Calls that mean "the app sets up OpenTelemetry itself" (API use alone, get_tracer, does not).
OTEL_SETUP_CALLS = {"TracerProvider", "set_tracer_provider", "instrument_app", "OTLPSpanExporter",
                    "BatchSpanProcessor", "SimpleSpanProcessor", "configure_azure_monitor",
                    "configure_opentelemetry"}
# Environment variables the image sets itself, or that only configure OpenTelemetry.
IMAGE_OWNED_ENV = re.compile(r"^(OTEL_|HONEYCOMB_|PYTHON|PATH$|PORT$|HOME$|HOSTNAME$)")
MAX_FILES = 2000  # a service folder, not a monorepo: stop reading past this


@dataclass(frozen=True)
class Found:
    """One guess and where it came from."""

    value: str
    source: str


@dataclass(frozen=True)
class Dependencies:
    requirements: str | None = None
    pyproject: str | None = None
    lock: str | None = None
    packages: tuple[str, ...] = ()  # canonical names the service declares
    source: str = ""
    others: tuple[str, ...] = ()  # other dependency files seen, not used

    @property
    def declared(self) -> str:
        return self.requirements or (f"{self.pyproject} + {self.lock}" if self.lock
                                     else self.pyproject or "nothing")


@dataclass(frozen=True)
class Route:
    path: str  # what verify requests
    route: str  # the http.route the framework reports
    status: int
    spans: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class App:
    framework: str
    interface: str  # wsgi | asgi
    target: str  # `module:attribute` for the server, e.g. `app:app`, `config.wsgi:application`
    source: str
    factory: bool = False
    settings_module: str | None = None  # Django
    static_root: bool = False  # Django: STATIC_ROOT is set, so collectstatic can run at build


@dataclass(frozen=True)
class Guess:
    """Everything `init` guessed about a service folder."""

    name: str
    dependencies: Dependencies
    app: App | None
    port: Found
    server: Found | None  # the production server the app declares
    added_packages: tuple[str, ...]  # what init adds for prod (none declared)
    dev_command: tuple[str, ...]
    prod_command: tuple[str, ...]
    health: Found | None
    smoke: tuple[Route, ...]
    otel_setup: tuple[Found, ...]
    sources: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # derived by init (never copied from the app's settings)
    env_names: tuple[Found, ...]  # variables the app reads or its Dockerfile sets: for run time
    build_commands: tuple[tuple[str, ...], ...]


# ---- reading the folder -------------------------------------------------------------------------

def python_files(folder: Path) -> list[Path]:
    """The app's Python files, shallow first; virtualenvs, caches and tests left out."""
    found: list[Path] = []
    for path in sorted(folder.rglob("*.py"), key=lambda p: (len(p.relative_to(folder).parts), p)):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") or part in NOT_SOURCE_DIRS for part in parts[:-1]) \
                or parts[-1] == "conftest.py" or parts[-1].startswith("test_"):
            continue
        found.append(path)
        if len(found) >= MAX_FILES:
            break
    return found


def parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except (SyntaxError, ValueError, OSError):
        return None


def _relative(folder: Path, path: Path) -> str:
    return path.relative_to(folder).as_posix()


def _module_name(folder: Path, path: Path) -> str:
    parts = list(path.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


# ---- dependencies ---------------------------------------------------------------------------------

def detect_dependencies(folder: Path) -> Dependencies:
    """A locked pyproject first, then requirements files, then an unlocked pyproject."""
    pyproject = folder / "pyproject.toml"
    requirement_files = sorted(
        _relative(folder, path) for pattern in ("requirements*.txt", "requirements/*.txt")
        for path in folder.glob(pattern) if path.is_file())
    main_requirements = _main_requirements(requirement_files)
    others = tuple(f for f in requirement_files if f != main_requirements)
    project = None
    if pyproject.is_file():
        try:
            project = read_pyproject(pyproject, "pyproject.toml")
        except SpecError:
            project = None
    if project is not None:
        names = tuple(dict.fromkeys(
            [_requirement_name(item) for item in project.dependencies]
            + list(project.poetry_dependencies)))
        for lock in (UV_LOCK, POETRY_LOCK):
            if (folder / lock).is_file() and (project.has_project_table or lock == POETRY_LOCK):
                return Dependencies(pyproject="pyproject.toml", lock=lock, packages=names,
                                    source=f"pyproject.toml + {lock}", others=tuple(requirement_files))
        if main_requirements is None and project.dependencies:
            return Dependencies(pyproject="pyproject.toml", packages=names,
                                source="pyproject.toml [project].dependencies")
    if main_requirements is not None:
        text = (folder / main_requirements).read_text(encoding="utf-8", errors="replace")
        return Dependencies(requirements=main_requirements, packages=requirement_names(text),
                            source=main_requirements, others=others)
    return Dependencies()


def _main_requirements(files: list[str]) -> str | None:
    """`requirements.txt`, else the production-looking one (`requirements/prod.txt`, …)."""
    def rank(name: str) -> tuple[int, str]:
        stem = PurePosixPath(name).stem.lower()
        if name == "requirements.txt":
            return (0, name)
        if any(word in stem for word in ("prod", "main", "base", "deploy")):
            return (1, name)
        if any(word in stem for word in ("dev", "test", "lint", "doc", "ci")):
            return (9, name)
        return (5, name)

    ranked = sorted(files, key=rank)
    return ranked[0] if ranked and rank(ranked[0])[0] < 9 else None


def _requirement_name(text: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
    return canonicalize_name(match[1]) if match else text


# ---- the app --------------------------------------------------------------------------------------

def detect_app(folder: Path, modules: dict[Path, ast.Module], packages: tuple[str, ...]
               ) -> App | None:
    """The framework and the object a server loads: Django from manage.py, else the first module
    that makes a Flask/FastAPI/Starlette app (a module-level assignment, or a factory function)."""
    django = _django_app(folder, modules)
    if django is not None:
        return django
    wanted = [name for name in ("fastapi", "starlette", "flask") if name in packages] or \
        ["fastapi", "starlette", "flask"]
    classes = {"flask": "Flask", "fastapi": "FastAPI", "starlette": "Starlette"}
    for framework in wanted:
        for path, tree in modules.items():
            module = _module_name(folder, path)
            for node in tree.body:
                if isinstance(node, ast.Assign) and _calls(node.value, classes[framework]):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            return App(framework, FRAMEWORKS[framework], f"{module}:{target.id}",
                                       f"{_relative(folder, path)}:{node.lineno}")
                if isinstance(node, ast.FunctionDef) and node.name in ("create_app", "make_app") \
                        and any(_calls(inner, classes[framework]) for inner in ast.walk(node)):
                    return App(framework, FRAMEWORKS[framework], f"{module}:{node.name}",
                               f"{_relative(folder, path)}:{node.lineno}", factory=True)
    return None


def _calls(node: ast.AST, name: str) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == name) or \
        (isinstance(func, ast.Attribute) and func.attr == name)


def _django_app(folder: Path, modules: dict[Path, ast.Module]) -> App | None:
    manage = folder / "manage.py"
    if manage not in modules:
        return None
    settings = None
    for node in ast.walk(modules[manage]):
        if isinstance(node, ast.Call) and len(node.args) == 2 and all(
                isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args):
            key, value = (arg.value for arg in node.args)  # type: ignore[attr-defined]
            if key == "DJANGO_SETTINGS_MODULE":
                settings = value
    if settings is None:
        return None
    project = settings.rsplit(".", 1)[0]
    wsgi = folder / Path(*project.split(".")) / "wsgi.py"
    target = f"{project}.wsgi:application"
    source = f"manage.py (DJANGO_SETTINGS_MODULE={settings})"
    settings_file = folder / Path(*settings.split(".")).with_suffix(".py")
    static_root = settings_file.is_file() and re.search(
        r"^\s*STATIC_ROOT\s*=", settings_file.read_text(errors="replace"), re.M) is not None
    if not wsgi.is_file():
        source += f"; no {project}/wsgi.py: check the target"
    return App("django", "wsgi", target, source, settings_module=settings, static_root=static_root)


# ---- routes ---------------------------------------------------------------------------------------

def detect_routes(folder: Path, modules: dict[Path, ast.Module], app: App | None) -> list[Route]:
    """GET routes without path parameters, as the framework reports them in `http.route`."""
    if app is None:
        return []
    if app.framework == "django":
        return _django_routes(folder, modules)
    app_name = app.target.split(":")[1]
    routes = []
    for path, tree in modules.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                rule = _route_rule(decorator, app_name)
                if rule and not re.search(r"[<{]", rule):
                    routes.append(Route(rule, rule, _status(node), _spans(node),
                                        f"{_relative(folder, path)}:{node.lineno}"))
    return routes


def _route_rule(decorator: ast.expr, app_name: str) -> str | None:
    """`@app.get("/x")`, `@app.route("/x")` (GET unless `methods` says otherwise)."""
    if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
            and isinstance(decorator.func.value, ast.Name) and decorator.args
            and isinstance(decorator.args[0], ast.Constant)
            and isinstance(decorator.args[0].value, str)):
        return None
    if decorator.func.value.id not in (app_name, "app", "application"):
        return None  # blueprints and routers add a prefix this cannot see
    method = decorator.func.attr
    if method == "route":
        methods = next((k.value for k in decorator.keywords if k.arg == "methods"), None)
        if isinstance(methods, ast.List | ast.Tuple) and not any(
                isinstance(m, ast.Constant) and str(m.value).upper() == "GET" for m in methods.elts):
            return None
    elif method != "get":
        return None
    return decorator.args[0].value


def _status(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """500 when the handler raises unconditionally (at its top level or inside `with` blocks)."""
    body: list[ast.stmt] = list(function.body)
    while body:
        statement = body.pop(0)
        if isinstance(statement, ast.Raise):
            return 500
        if isinstance(statement, ast.With | ast.AsyncWith):
            body = list(statement.body) + body
    return 200


def _spans(function: ast.AST) -> tuple[str, ...]:
    """Manual spans the handler opens: `tracer.start_as_current_span("name")`."""
    names = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("start_as_current_span", "start_span") and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names.append(node.args[0].value)
    return tuple(dict.fromkeys(names))


def _django_routes(folder: Path, modules: dict[Path, ast.Module]) -> list[Route]:
    functions = {node.name: node for tree in modules.values() for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    routes = []
    for path, tree in modules.items():
        if path.name != "urls.py":
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("path", "re_path") and len(node.args) >= 2
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                continue
            pattern = node.args[0].value
            view = node.args[1]
            if node.func.id != "path" or "<" in pattern or (isinstance(view, ast.Call)):
                continue  # regexes, parameters and include(): not guessed
            name = view.attr if isinstance(view, ast.Attribute) else \
                view.id if isinstance(view, ast.Name) else ""
            handler = functions.get(name)
            routes.append(Route("/" + pattern, pattern,
                                _status(handler) if handler else 200,
                                _spans(handler) if handler else (),
                                f"{_relative(folder, path)}:{node.lineno}"))
    return routes


def is_health(route: Route) -> bool:
    last = route.path.rstrip("/").rsplit("/", 1)[-1].lower()
    return last in HEALTH_NAMES


# ---- port, server, telemetry ------------------------------------------------------------------------

_PORT_OPTION = re.compile(r"(?:--bind[= ]|-b[= ]?|--port[= ]|-p[= ]?)(?:[\w.\[\]:]*:)?(\d{2,5})\b")


def detect_port(folder: Path, modules: dict[Path, ast.Module], app: App | None) -> Found:
    """The app's own deployment says it first (Dockerfile EXPOSE, then its CMD), then a Procfile,
    then the code (`app.run(port=…)`, `uvicorn.run(…, port=…)`), then the framework's default."""
    dockerfile = folder / "Dockerfile"
    if dockerfile.is_file():
        lines = dockerfile.read_text(errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            match = re.match(r"\s*EXPOSE\s+(\d+)", line, re.I)
            if match:
                return Found(match[1], f"Dockerfile:{number} EXPOSE")
        for number, line in enumerate(lines, 1):
            if re.match(r"\s*(CMD|ENTRYPOINT)\b", line, re.I) and (match := _PORT_OPTION.search(
                    line.replace('", "', " ").replace('","', " "))):
                return Found(match[1], f"Dockerfile:{number} {line.split()[0].upper()}")
    procfile = folder / "Procfile"
    if procfile.is_file():
        for number, line in enumerate(procfile.read_text(errors="replace").splitlines(), 1):
            if line.startswith("web:") and (match := _PORT_OPTION.search(line)):
                return Found(match[1], f"Procfile:{number}")
    for path, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "run":
                for keyword in node.keywords:
                    if keyword.arg == "port" and isinstance(keyword.value, ast.Constant) \
                            and isinstance(keyword.value.value, int):
                        return Found(str(keyword.value.value),
                                     f"{_relative(folder, path)}:{node.lineno} run(port=…)")
    framework = app.framework if app else "flask"
    name = {"flask": "Flask", "django": "Django", "fastapi": "uvicorn", "starlette": "uvicorn"}
    return Found(str(DEFAULT_PORTS.get(framework, 8000)), f"{name.get(framework, 'the')} default")


def detect_otel_setup(folder: Path, modules: dict[Path, ast.Module]) -> list[Found]:
    """Where the app builds its own tracer provider, exporter or instrumentation."""
    found = []
    for path, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else \
                    func.attr if isinstance(func, ast.Attribute) else ""
                is_instrument = name == "instrument" and isinstance(func, ast.Attribute) and \
                    isinstance(func.value, ast.Call) and _callee(func.value).endswith("Instrumentor")
                if name in OTEL_SETUP_CALLS or is_instrument:
                    label = (f"{_callee(getattr(func, 'value', func))}().instrument"
                             if is_instrument else name)
                    found.append(Found(label, f"{_relative(folder, path)}:{node.lineno}"))
    return sorted(found, key=lambda item: (item.source.split(":")[0],
                                           int(item.source.rsplit(":", 1)[1])))


def _callee(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    return node.id if isinstance(node, ast.Name) else \
        node.attr if isinstance(node, ast.Attribute) else ""


def detect_env_names(folder: Path, modules: dict[Path, ast.Module]) -> list[Found]:
    """Variables the app reads (`os.environ[…]`, `os.environ.get(…)`, `os.getenv(…)`) and those its
    own Dockerfile or `.env` files set: names only, never values."""
    found: dict[str, str] = {}
    for path, tree in modules.items():
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Subscript) and _is_environ(node.value) and \
                    isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                name = node.slice.value
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str) and isinstance(node.func, ast.Attribute) \
                    and ((node.func.attr in ("get", "setdefault", "pop") and _is_environ(node.func.value))
                         or (node.func.attr == "getenv")):
                name = node.args[0].value
            if name and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                found.setdefault(name, f"{_relative(folder, path)}:{getattr(node, 'lineno', 0)}")
    dockerfile = folder / "Dockerfile"
    if dockerfile.is_file():
        for number, line in enumerate(dockerfile.read_text(errors="replace").splitlines(), 1):
            match = re.match(r"\s*ENV\s+(.*)", line, re.I)
            if match:
                for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?:=|\s)", match[1] + " ")[:1] or []:
                    found.setdefault(name, f"Dockerfile:{number}")
                for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", match[1]):
                    found.setdefault(name, f"Dockerfile:{number}")
    for env_file in sorted(folder.glob(".env*")) + sorted(folder.glob("*.env")):
        if env_file.is_file():
            for number, line in enumerate(env_file.read_text(errors="replace").splitlines(), 1):
                match = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
                if match:
                    found.setdefault(match[1], f"{env_file.name}:{number}")
    return [Found(name, source) for name, source in found.items()
            if not IMAGE_OWNED_ENV.match(name)]


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or \
        (isinstance(node, ast.Name) and node.id == "environ")


def detect_sources(folder: Path, kept: set[str] | None = None) -> list[str]:
    """Top-level entries that are the app: packages and folders (not tests, docs, venvs or dot
    folders) and Python or config files (not the dependency files, Dockerfile, Procfile). With
    `kept` (what a build context would send), only entries that hold something it sends."""
    sources = []
    tops = {path.split("/")[0] for path in kept} if kept is not None else None
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith(".") or name in NOT_SOURCE_DIRS | NOT_SOURCE_FILES or entry.is_symlink():
            continue
        if tops is not None and name not in tops:
            continue
        if entry.is_dir():
            files = [path for path in entry.rglob("*") if path.is_file()]
            if kept is not None:
                files = [path for path in files if path.relative_to(folder).as_posix() in kept]
            if files and not (entry / "pyvenv.cfg").exists():
                sources.append(name)
        elif name.endswith(SOURCE_SUFFIXES) and not name.startswith("requirements"):
            sources.append(name)
    return sources


# ---- the whole guess -----------------------------------------------------------------------------

def guess(folder: Path, name: str, kept: set[str] | None = None) -> Guess:
    """Everything guessed about `folder`; `kept`: the paths a build context would send of it."""
    modules = {path: tree for path in python_files(folder) if (tree := parse(path)) is not None}
    deps = detect_dependencies(folder)
    app = detect_app(folder, modules, deps.packages)
    port = detect_port(folder, modules, app)
    number = int(port.value)
    routes = detect_routes(folder, modules, app)
    health_route = next((route for route in routes if is_health(route)), None)
    smoke = tuple(route for route in routes if route is not health_route)
    server, added = _server(app, deps.packages)
    dev, prod = _commands(app, server.value if server else None, added, number)
    if app is None:  # a plain script serving itself: run it, and say so in the checks
        script = next((name for name in ("app.py", "main.py", "server.py", "wsgi.py")
                       if (folder / name).is_file()),
                      next((_relative(folder, path) for path in modules), "app.py"))
        dev = prod = ("python", script)
    env: list[tuple[str, str]] = []
    build_commands: list[tuple[str, ...]] = []
    if app is not None and app.framework == "django":
        env.append(("DJANGO_SETTINGS_MODULE", app.settings_module or ""))
        if app.static_root:
            build_commands.append(("python", "manage.py", "collectstatic", "--noinput"))
    return Guess(
        name=name, dependencies=deps, app=app, port=port, server=server, added_packages=added,
        dev_command=dev, prod_command=prod,
        health=Found(health_route.path, health_route.source) if health_route else None,
        smoke=smoke, otel_setup=tuple(detect_otel_setup(folder, modules)),
        sources=tuple(detect_sources(folder, kept)), env=tuple(env),
        env_names=tuple(found for found in detect_env_names(folder, modules)
                        if found.value not in dict(env)),
        build_commands=tuple(build_commands),
    )


def _server(app: App | None, packages: tuple[str, ...]) -> tuple[Found | None, tuple[str, ...]]:
    """The production server the app declares, or the one init adds: gunicorn for WSGI, uvicorn
    workers under gunicorn for ASGI."""
    if app is None:
        return None, ()
    if app.interface == "asgi":
        if "gunicorn" in packages and ("uvicorn-worker" in packages or "uvicorn" in packages):
            return Found("gunicorn+uvicorn", "declared"), ()
        for server in ASGI_SERVERS:
            if server in packages:
                return Found(server, "declared"), ()
        return None, (GUNICORN, UVICORN_WORKER)
    for server in WSGI_SERVERS:
        if server in packages:
            return Found(server, "declared"), ()
    return None, (GUNICORN,)


def _commands(app: App | None, server: str | None, added: tuple[str, ...], port: int
              ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    target = app.target + ("()" if app and app.factory and app.framework == "flask" else "") \
        if app else "app:app"
    gunicorn = ("gunicorn", f"--bind=0.0.0.0:{port}", "--workers=2", "--worker-tmp-dir=/dev/shm",
                "--access-logfile=-")
    framework = app.framework if app else "flask"
    if framework == "django":
        dev: tuple[str, ...] = ("python", "manage.py", "runserver", f"0.0.0.0:{port}")
    elif framework == "flask":
        dev = ("flask", "--app", target, "run", "--host=0.0.0.0", f"--port={port}", "--debug")
    else:
        dev = ("uvicorn", target, "--host=0.0.0.0", f"--port={port}", "--reload") + \
            (("--factory",) if app and app.factory else ())
    if app is not None and app.interface == "asgi":
        if server == "uvicorn":
            prod = ("uvicorn", target, "--host=0.0.0.0", f"--port={port}", "--no-server-header") + \
                (("--factory",) if app.factory else ())
        elif server == "hypercorn":
            prod = ("hypercorn", f"--bind=0.0.0.0:{port}", target)
        else:
            worker = "uvicorn_worker.UvicornWorker" if added or server is None else \
                "uvicorn.workers.UvicornWorker"
            prod = (*gunicorn, f"--worker-class={worker}", target)
    elif server == "waitress":
        prod = ("waitress-serve", f"--listen=0.0.0.0:{port}", target)
    else:
        prod = (*gunicorn, target)
    return dev, prod


def iter_checks(result: Guess) -> Iterator[str]:
    """What a person should look at before building."""
    if result.app is None:
        yield "no Flask, FastAPI, Starlette or Django app found: set dev.command and prod.command"
    if not result.dependencies.requirements and not result.dependencies.pyproject:
        yield "no requirements*.txt or pyproject.toml found: add one and set `requirements:`"
    if result.health is None:
        yield ("no health route found: `health: /` is assumed; it must answer 2xx (add a route "
               "like /health, or point `health` at one)")
    if not result.smoke:
        yield "no GET route without parameters found for `smoke`: add one so verify sees a span"
    if result.smoke:
        expected = ", ".join(f"{route.path} → {route.status}" for route in result.smoke)
        yield (f"smoke expects {expected} (500 where the handler raises): every GET route "
               "without parameters; drop any with side effects")
    if result.otel_setup:
        where = ", ".join(f"{found.value} at {found.source}" for found in result.otel_setup[:4])
        yield (f"the app sets up OpenTelemetry itself ({where}): the image's wrapper "
               "(opentelemetry-instrument) owns the provider, so that setup is dead code in the "
               "image unless it skips itself when a provider exists")
    if result.added_packages:
        yield (f"no production server declared: {', '.join(result.added_packages)} added as "
               "prod.pip_packages (or add it to the app's own dependencies)")
    if result.env_names:
        names = ", ".join(found.value for found in result.env_names[:8])
        yield (f"the app reads {names}: pass them at run time (docker run -e); values are not "
               "copied into the spec")
    for other in result.dependencies.others:
        yield f"{other} is not installed (only {result.dependencies.declared} is)"


def shlex_join(command: tuple[str, ...]) -> str:
    return shlex.join(command)
