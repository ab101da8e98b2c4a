"""The dev loop on the real engine, through the real Compose v2 plugin.

`builder dev` runs on a copy of the project whose services are renamed (its own images, its own
Compose project), so the real sources are never edited and no real tag is touched. One session
serves the checks in order: it starts, a request's trace tree appears, an edit to a mounted source
reloads, strace/py-spy/tcpdump work through `docker exec -u 0`, telemetry is forwarded when a
Honeycomb key is set, and SIGINT (Ctrl-C) removes every container and prints the service map.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
import yaml

from builder import naming
from builder.build.images import ImageBuilder
from builder.engine.client import Engine
from builder.project import Project
from builder.verify.receiver import OtlpReceiver
from tests.conftest import QuietProgress

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CALLER, CALLEE = "backend-flask", "backend-fastapi"
TEST_KEY = "imagewright-dev-loop-key"


def test_compose_accepts_the_generated_file() -> None:
    """`docker compose -f build/compose.yaml config`, on the committed file, exactly so."""
    result = subprocess.run(["docker", "compose", "-f", "build/compose.yaml", "config"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    project = Project(ROOT)
    assert set(config["services"]) == {spec.name for spec in project.services()}
    for spec in project.services():
        service = config["services"][spec.name]
        [mount] = service["volumes"]
        assert Path(mount["source"]) == spec.directory.resolve()
        assert {"SYS_PTRACE", "NET_ADMIN", "NET_RAW"} <= set(service["cap_add"])
        assert service["ports"][0]["host_ip"] == "127.0.0.1"
        assert service["ports"][0]["target"] == spec.port


# ---- one session of `builder dev` on a copy of the project -------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Session:
    root: Path
    names: dict[str, str]  # sample service → its name in the copy
    ports: dict[str, int]  # copy's service → host port
    process: subprocess.Popen[str]
    upstream: OtlpReceiver  # stands in for Honeycomb
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, what: Callable[[str], bool], timeout: float, describe: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what(self.output()):
                return
            assert self.process.poll() is None, f"dev exited {self.process.returncode}:\n{self.output()}"
            time.sleep(0.2)
        raise AssertionError(f"no {describe} within {timeout:.0f}s; output:\n{self.output()}")

    def get(self, service: str, path: str) -> tuple[int, bytes]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.ports[service]}{path}", timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, b""


def copy_project(tmp_path: Path, suffix: str) -> dict[str, str]:
    """images/ with both samples renamed `<name>-<suffix>` (the caller's default address of the
    callee too), templates/ and build/ as they are; then rendered."""
    for folder in ("templates", "build"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    names = {CALLER: f"{CALLER}-{suffix}", CALLEE: f"{CALLEE}-{suffix}"}
    for original, renamed in names.items():
        shutil.copytree(ROOT / "images" / original, tmp_path / "images" / renamed,
                        ignore=shutil.ignore_patterns("__pycache__"))
        for path in (tmp_path / "images" / renamed).rglob("*"):
            if path.is_file():
                text = path.read_text()
                for old, new in names.items():
                    text = re.sub(rf"\b{re.escape(old)}\b(?!-{suffix})", new, text)
                path.write_text(text)
        shutil.rmtree(tmp_path / "build" / original)
    (tmp_path / "build" / naming.COMPOSE_FILE).unlink()
    assert subprocess.run([sys.executable, "-m", "builder", "-C", str(tmp_path), "render"],
                          capture_output=True, check=False).returncode == 0
    return names


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, engine: Engine,
            docker_client: docker.DockerClient) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("devloop")
    suffix = uuid.uuid4().hex[:8]
    names = copy_project(root, suffix)
    project = Project(root)
    builder = ImageBuilder(engine, project, QuietProgress(), lambda message: None)
    for spec in project.services():
        builder.build_target(spec, project.catalog.targets(spec)[0], primary=True)
    ports = {name: free_port() for name in names.values()}
    env = {**os.environ, "COLUMNS": "250", "HONEYCOMB_API_KEY": TEST_KEY,
           **{naming.port_variable(name): str(port) for name, port in ports.items()}}
    with OtlpReceiver() as upstream:
        process = subprocess.Popen(
            [sys.executable, "-m", "builder", "-C", str(root), "dev", "--all",
             "--forward-to", f"http://127.0.0.1:{upstream.port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        running = Session(root, names, ports, process, upstream)
        reader = threading.Thread(target=lambda: running.lines.extend(
            line.rstrip("\n") for line in process.stdout or ()), daemon=True)
        reader.start()
        try:
            yield running
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    process.kill()
            # Whatever a failed session left (the last test asserts there is nothing).
            for container in docker_client.containers.list(all=True, filters={
                    "label": f"com.docker.compose.project={naming.compose_project(root)}"}):
                container.remove(force=True)
            for name in names.values():
                for image in docker_client.images.list(name=name):
                    for tag in image.tags:
                        docker_client.images.remove(tag, noprune=False)


def containers_of(session: Session, docker_client: docker.DockerClient) -> dict[str, str]:
    """Compose service → container name, as the engine sees the session's project."""
    project = naming.compose_project(session.root)
    return {c.labels["com.docker.compose.service"]: c.name for c in docker_client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"})}


def test_dev_starts_every_service_and_says_where(session: Session) -> None:
    for name, port in session.ports.items():
        session.wait_for(lambda out, n=name, p=port: f"ready {n} http://127.0.0.1:{p}" in out,
                         240, f"'ready {name}' line")
    status, body = session.get(session.names[CALLER], "/api/activities/home")
    assert status == 200
    notifications = json.loads(body)["notifications"]
    assert notifications["error"] is None and notifications["items"], \
        "the caller reaches the callee by its Compose service name"


def test_a_requests_trace_tree_appears_with_both_services(session: Session) -> None:
    caller, callee = session.names[CALLER], session.names[CALLEE]
    assert session.get(caller, "/api/activities/home")[0] == 200
    header = re.compile(rf"^trace [0-9a-f]{{32}} \({re.escape(callee)}, {re.escape(caller)}\)$", re.M)
    session.wait_for(lambda out: bool(header.search(out)), 30, "trace tree across both services")
    tree = session.output()[header.search(session.output()).start():]  # type: ignore[union-attr]
    lines = tree.splitlines()
    root = next(line for line in lines if "GET /api/activities/home [SERVER]" in line)
    client = next(line for line in lines if "[CLIENT]" in line)
    callee_server = next(line for line in lines if "GET /api/notifications [SERVER]" in line)
    indent = [len(line) - len(line.lstrip()) for line in (root, client, callee_server)]
    assert indent[0] < indent[1] < indent[2], "server → client → the callee's server, nested"


def test_an_edit_to_a_mounted_source_reloads(session: Session) -> None:
    caller = session.names[CALLER]
    assert session.get(caller, "/api/dev-loop-edit")[0] == 404
    source = session.root / "images" / caller / "app.py"
    source.write_text(source.read_text() + '\n\n@app.get("/api/dev-loop-edit")\n'
                      'def dev_loop_edit() -> dict[str, str]:\n    return {"edited": "yes"}\n')
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = session.get(caller, "/api/dev-loop-edit")
        if status == 200:
            assert json.loads(body) == {"edited": "yes"}
            return
        time.sleep(0.5)
    raise AssertionError(f"the edit never showed; output:\n{session.output()}")


@pytest.mark.parametrize(("tool", "expected"), [
    (["timeout", "-s", "INT", "2", "strace", "-p", "1"], "Process 1 attached"),
    (["py-spy", "dump", "--pid", "1"], "Process 1:"),
    (["timeout", "-s", "INT", "2", "tcpdump", "-i", "eth0", "-n", "-c", "1"], "listening on eth0"),
])
def test_debug_tools_attach_as_the_readme_says(session: Session, docker_client: docker.DockerClient,
                                               tool: list[str], expected: str) -> None:
    """`docker exec -u 0 <container> strace -p 1` (py-spy, tcpdump likewise), in every service."""
    session.wait_for(lambda out: out.count("ready ") >= len(session.names), 240, "ready lines")
    for service, container in containers_of(session, docker_client).items():
        result = docker_client.containers.get(container).exec_run(tool, user="0")
        output = result.output.decode("utf-8", "replace")
        assert expected in output, f"{service}: {' '.join(tool)} → {output}"
        assert "Operation not permitted" not in output


def test_telemetry_is_forwarded_with_the_honeycomb_key(session: Session) -> None:
    assert session.get(session.names[CALLER], "/api/activities/home")[0] == 200
    spans = session.upstream.wait_for_spans(
        lambda spans: {s.service_name for s in spans} >= set(session.names.values()), timeout=30)
    assert {s.headers.get("x-honeycomb-team") for s in spans} == {TEST_KEY}


def test_ctrl_c_removes_every_container_and_prints_the_map(session: Session,
                                                           docker_client: docker.DockerClient) -> None:
    session.wait_for(lambda out: out.count("ready ") >= len(session.names), 240, "ready lines")
    assert containers_of(session, docker_client), "the session's containers run"
    session.process.send_signal(signal.SIGINT)
    assert session.process.wait(timeout=120) == 0
    time.sleep(0.5)  # the reader thread takes the last lines
    caller, callee = session.names[CALLER], session.names[CALLEE]
    assert containers_of(session, docker_client) == {}
    project = naming.compose_project(session.root)
    assert docker_client.networks.list(filters={"label": f"com.docker.compose.project={project}"}) == []
    output = session.output()
    assert "every container removed" in output
    assert re.search(rf"{re.escape(caller)}\s+│\s+→\s+│\s+{re.escape(callee)}\s+│", output), output
    document = json.loads((session.root / "reports" / "service-map" / "dev-loop.json").read_text())
    [edge] = document["edges"]
    assert (edge["caller"], edge["callee"], edge["errors"]) == (caller, callee, 0)
    assert edge["requests"] >= 3, "every home request of this session"
    assert re.search(r"forwarded [1-9]\d* export request\(s\) to http://127\.0\.0\.1", output)
