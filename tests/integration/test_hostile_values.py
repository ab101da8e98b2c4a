"""Hostile and careless values, built for real: what a spec says is what the image has.

One scratch service (a copy of backend-fastapi under its own name and tags) is built once, dev
variant, with a corpus of awkward values in `env`, in its labels and in `dev.pip_packages`; the
tests read the result back with `docker image inspect` and from inside a container.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from builder.engine.client import Engine
from builder.engine.containers import managed_containers, run_to_completion

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SERVICE = "iw-hostile-roundtrip"
IMAGE = f"{SERVICE}:dev"

# name → value, each written quoted in image.yaml.
CORPUS = {
    "DOLLARS_AND_AMPERSAND": "pa$$w0rd&x",
    "ONE_DOLLAR": "$HOME",
    "TWO_DOLLARS": "$$",
    "BRACED": "${HOME:-fallback}",
    "AMPERSANDS": "a&b&&c",
    "ANGLES": "<b>x</b> > y < z",
    "DOUBLE_QUOTES": 'say "hi"',
    "SINGLE_QUOTE": "it's",
    "BACKSLASHES": "C:\\path\\to\\",
    "ESCAPED_QUOTE": '\\"',
    "BACKTICKS": "`uname -a`",
    "SEMICOLON": "a; rm -rf /",
    "HASH": "# not a comment",
    "NON_ASCII": "café naïve Ωmega 日本語",
    "EMOJI": "🚀 launch 🐍",
    "PADDED": "  padded  ",
    "EMPTY": "",
    "JSONISH": '{"a": [1, 2], "b": "\\u0026"}',
    "MARKUP": "see [/docs] and [bold]x[/bold]",
}
# name → (as written, unquoted, in image.yaml; what the image must get: the same text).
UNQUOTED = {
    "APP_VERSION": "1.10",
    "UMASK": "0755",
    "START": "12:30",
    "FEATURE": "yes",
    "COUNT": "3",
}
DESCRIPTION = 'say "hi" & pa$$w0rd <b> C:\\dir\\ café 🚀 see [/docs] `x` $HOME ${X} #'
SOURCE_URL = "https://example.com/a?b=$HOME&c='q'"
ATTRIBUTES = {"team": "a b,c=d", "note": "café 100%"}
# Specifiers that shell word-splitting would mangle (`>=`, `<` are redirections); each pin is one
# the latest release does not satisfy, so a lost pin shows in the installed version.
PIP_PACKAGES = ["rich>=13,<13.8", "attrs<23", "httpx[http2]==0.27.2"]


def spec_text(original: str) -> str:
    data = yaml.safe_load(original)
    data.update(name=SERVICE, description=DESCRIPTION, source_url=SOURCE_URL,
                env=CORPUS, otel={"endpoint": "http://collector.example:4318/base",
                                  "resource_attributes": ATTRIBUTES,
                                  "sampler": "parentbased_traceidratio", "sampler_ratio": 0.25})
    data.pop("smoke", None)
    data["dev"]["pip_packages"] = PIP_PACKAGES
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    unquoted = "".join(f"  {name}: {written}\n" for name, written in UNQUOTED.items())
    return text.replace("env:\n", "env:\n" + unquoted, 1)


def remove_images(client: docker.DockerClient) -> None:
    for image in client.images.list(name=SERVICE):
        for tag in image.tags:
            client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def hostile_image(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient,
                  engine: Engine,
                  ubuntu_base: str) -> Iterator[tuple[str, subprocess.CompletedProcess[str]]]:
    root = tmp_path_factory.mktemp("hostile-project")
    for folder in ("templates", "build"):
        shutil.copytree(ROOT / folder, root / folder)
    service = root / "images" / SERVICE
    shutil.copytree(ROOT / "images" / "backend-fastapi", service)
    spec = service / "image.yaml"
    spec.write_text(spec_text(spec.read_text()), encoding="utf-8")
    remove_images(docker_client)
    try:
        result = subprocess.run([sys.executable, "-m", "builder", "-C", str(root), "build", SERVICE,
                                 "--variant", "dev"], capture_output=True, text=True, check=False,
                                env={**os.environ, "COLUMNS": "200"})
        yield IMAGE, result
    finally:
        remove_images(docker_client)
        assert managed_containers(engine) == []


def built(hostile_image: tuple[str, subprocess.CompletedProcess[str]]) -> str:
    image, result = hostile_image
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "Traceback" not in result.stderr
    return image


def test_env_and_labels_reach_the_image_byte_for_byte(
        hostile_image: tuple[str, subprocess.CompletedProcess[str]],
        docker_client: docker.DockerClient, engine: Engine) -> None:
    config = docker_client.api.inspect_image(built(hostile_image))["Config"]
    env = dict(entry.split("=", 1) for entry in config["Env"])
    expected = {**CORPUS, **UNQUOTED}
    assert {name: env.get(name) for name in expected} == expected
    labels = config["Labels"]
    assert labels["org.opencontainers.image.description"] == DESCRIPTION
    assert labels["org.opencontainers.image.source"] == SOURCE_URL
    assert labels["io.imagewright.service"] == SERVICE
    # …and the process in the container sees the same environment.
    code, output = run_to_completion(engine, IMAGE, ["/opt/venv/bin/python", "-c",
                                     "import json, os; print(json.dumps(dict(os.environ)))"])
    assert code == 0, output
    assert {name: json.loads(output)[name] for name in expected} == expected


def test_pip_specifiers_extras_and_pins_reach_pip(
        hostile_image: tuple[str, subprocess.CompletedProcess[str]],
        engine: Engine) -> None:
    script = ("import json, importlib.metadata as m; "
              "print(json.dumps({p: m.version(p) for p in ('rich', 'attrs', 'httpx', 'h2')}))")
    code, output = run_to_completion(engine, built(hostile_image),
                                     ["/opt/venv/bin/python", "-c", script])
    assert code == 0, output
    versions = json.loads(output)
    major, minor = (int(part) for part in versions["rich"].split(".")[:2])
    assert (major, minor) >= (13, 0) and (major, minor) < (13, 8), versions  # rich>=13,<13.8
    assert int(versions["attrs"].split(".")[0]) < 23, versions                # attrs<23
    assert versions["httpx"] == "0.27.2", versions                            # ==0.27.2
    assert versions["h2"], versions                                          # the [http2] extra


def test_otel_keys_reach_the_sdk_as_written(
        hostile_image: tuple[str, subprocess.CompletedProcess[str]],
        engine: Engine) -> None:
    """The SDK's own environment detector reads the resource attributes back: percent-encoding
    in the Dockerfile, the original text in the SDK."""
    script = ("import json, os; from opentelemetry.sdk.resources import OTELResourceDetector; "
              "print(json.dumps({'attributes': dict(OTELResourceDetector().detect().attributes), "
              "'env': {k: v for k, v in os.environ.items() if k.startswith('OTEL_')}}))")
    code, output = run_to_completion(engine, built(hostile_image),
                                     ["/opt/venv/bin/python", "-c", script])
    assert code == 0, output
    seen = json.loads(output)
    for key, value in ATTRIBUTES.items():
        assert seen["attributes"][key] == value
    assert seen["attributes"]["deployment.environment"] == "dev"
    assert seen["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.example:4318/base"
    assert seen["env"]["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert seen["env"]["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
