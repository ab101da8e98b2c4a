"""ServiceSpec + Target → Dockerfile text. Pure: no Docker, no network, no clock."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from builder import naming
from builder.core.errors import SpecError, UserError
from builder.core.files import atomic_write
from builder.core.yamlfile import load_yaml
from builder.naming import TEMPLATE_LABELS
from builder.spec.catalog import Catalog, Target
from builder.spec.layout import Layout
from builder.spec.service import ServiceSpec


@dataclass(frozen=True)
class OtelSettings:
    packages: tuple[str, ...]
    exporters: tuple[str, ...]
    disabled_instrumentations: tuple[str, ...]
    endpoint: str


@dataclass(frozen=True)
class RenderedFile:
    path: Path
    text: str


NAIVE_TEMPLATE = "naive.Dockerfile.j2"
# build/ files that are not renders of a service but are committed beside them.
KEPT_FILES = (naming.PINS_FILE,)


def dockerfile_quote(value: object) -> str:
    """`value` as one double-quoted Dockerfile word that ENV, LABEL and ARG read back byte for
    byte: inside double quotes Docker's lexer takes a backslash before `\\`, `"` and `$` as that
    character, and expands `$` otherwise. (JSON's escapes are not Dockerfile escapes: `\\u0026`
    would reach the image as six characters.) Line breaks never get here: the spec refuses them."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{text}"'


class Renderer:
    def __init__(self, templates_dir: Path, catalog: Catalog, layout: Layout,
                 pins: dict[str, str] | None = None) -> None:
        self.templates_dir = templates_dir
        self.catalog = catalog
        self.layout = layout
        self.pins = pins or {}
        # Sandboxed and strict, like Kolla: a template can't reach Python internals, and a typo in a
        # variable name is an error rather than an empty string in a Dockerfile.
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(templates_dir),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
        self.env.filters["pinned"] = lambda ref: self.pins.get(ref, ref)
        # Paths inside images, build-arg names and label keys: each defined once, outside templates.
        self.env.globals["layout"] = layout
        self.env.globals["label"] = TEMPLATE_LABELS
        self.env.filters["arg_ref"] = lambda name: f"${{{name}}}"  # a build arg's value: ${NAME}
        # Each user value is escaped for where it is written: a Dockerfile word (ENV, LABEL,
        # ARG), a shell word (RUN), an OpenTelemetry attribute value (percent-encoded).
        self.env.filters["dockerfile_quote"] = dockerfile_quote
        self.env.filters["shell_quote"] = shlex.quote
        self.env.filters["percent_encode"] = lambda value: quote(str(value), safe="")
        otel = load_yaml(templates_dir / "otel.yaml", "templates/otel.yaml").data
        self.otel = OtelSettings(tuple(otel["packages"]), tuple(otel["exporters"]),
                                 tuple(otel["disabled_instrumentations"]), otel["endpoint"])

    def unpinned(self, refs: list[str]) -> list[str]:
        return [ref for ref in refs if ref not in self.pins]

    def dockerfile(self, service: ServiceSpec, target: Target) -> str:
        return self.render_template(
            target.template,
            service=service,
            target=target,
            base=self.catalog.base(target.base),
            builder=self.catalog.base(target.builder),
            otel=self.otel,
        )

    def naive_dockerfile(self, service: ServiceSpec) -> str:
        """The tutorial-style baseline compare measures against, on dev's base."""
        return self.render_template(NAIVE_TEMPLATE, service=service, otel=self.otel,
                                    base=self.catalog.targets(service)[0].base)

    def debug_twin_dockerfile(self, service: ServiceSpec, target: Target) -> str:
        assert target.debug_twin is not None
        return self.render_template(target.debug_twin.template, service=service, target=target,
                                    twin=target.debug_twin,
                                    tools=self.catalog.base(target.debug_twin.tools_from))

    def render_template(self, name: str, **context: object) -> str:
        try:
            text = self.env.get_template(name).render(**context)
        except jinja2.TemplateSyntaxError as error:
            raise SpecError(f"templates/{error.name or name}", "", error.message or "syntax error",
                            error.lineno) from None
        except jinja2.TemplateError as error:
            raise UserError(f"templates/{name}:{_template_line(error)} {error}") from None
        return _tidy(text)


def _template_line(error: Exception) -> str:
    """The template line an error came from, found in the traceback Jinja rewrites for us."""
    traceback = error.__traceback__
    line = ""
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename.endswith(".j2"):
            line = f"{traceback.tb_lineno}:"
        traceback = traceback.tb_next
    return line


def _tidy(text: str) -> str:
    """Collapse runs of blank lines that template control blocks leave behind.

    Only "\\n" ends a line, as for Docker's parser: `str.splitlines()` would also split at
    U+2028, U+0085, "\\r", … and so make a new instruction of whatever follows one."""
    lines: list[str] = []
    for line in text.rstrip(" \t\n").split("\n"):
        if line.strip(" \t") or (lines and lines[-1].strip(" \t")):
            lines.append(line.rstrip(" \t"))
    return "\n".join(lines) + "\n"


def rendered_files(renderer: Renderer, service: ServiceSpec, build_dir: Path) -> list[RenderedFile]:
    """Every file `render` writes for a service: one Dockerfile per target (and per debug twin),
    the naive baseline's, and .dockerignore."""
    files: list[RenderedFile] = []
    for target in renderer.catalog.targets(service):
        files.append(RenderedFile(naming.dockerfile_path(build_dir, service.name, target.label),
                                  renderer.dockerfile(service, target)))
        if target.debug_twin is not None:
            files.append(RenderedFile(
                naming.dockerfile_path(build_dir, service.name, target.debug_label),
                renderer.debug_twin_dockerfile(service, target)))
    files.append(RenderedFile(naming.dockerfile_path(build_dir, service.name, naming.NAIVE),
                              renderer.naive_dockerfile(service)))
    files.append(RenderedFile(naming.rendered_dir(build_dir, service.name) / naming.DOCKERIGNORE,
                              renderer.render_template("dockerignore.j2")))
    return files


def orphaned_files(build_dir: Path, expected: list[RenderedFile]) -> list[Path]:
    """Files under build/ that no render produces (a removed service or flavor left them):
    `render --check` fails on them, as on stale ones."""
    wanted = {rendered.path for rendered in expected} | {build_dir / name for name in KEPT_FILES}
    return sorted(path for path in build_dir.rglob("*") if path.is_file() and path not in wanted)


def write_files(files: list[RenderedFile]) -> None:
    for rendered in files:
        atomic_write(rendered.path, rendered.text)


def stale_files(files: list[RenderedFile]) -> list[Path]:
    """Committed renders that differ from what the templates produce now (the `render --check`)."""
    return [
        rendered.path
        for rendered in files
        if not rendered.path.is_file() or rendered.path.read_text(encoding="utf-8") != rendered.text
    ]
