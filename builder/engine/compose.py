"""The dev loop's Compose project: every `docker compose` invocation imagewright makes.

Compose v2 is a CLI plugin (`make engine` installs it), so this runs the docker CLI; nothing else
outside builder/engine does. Each invocation runs in a session of its own: the Ctrl-C a person
types reaches imagewright only, which then takes the project down itself, whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from builder.core.errors import FaultError
from builder.engine.client import EngineError
from builder.engine.containers import published_port_problem

COMMAND_TIMEOUT_S = 180.0
# `down` gives each container this long to stop on SIGTERM before it is killed.
STOP_TIMEOUT_S = 5


@dataclass(frozen=True)
class ComposeContainer:
    service: str
    name: str
    state: str  # "running", "exited", …


@dataclass(frozen=True)
class ComposeProject:
    file: Path
    name: str
    # Interpolation variables for the file (host ports, receiver port, run id) on top of the
    # environment this process runs in.
    variables: Mapping[str, str]

    def _command(self, *args: str) -> list[str]:
        docker = shutil.which("docker")
        if docker is None:
            raise FaultError("the docker CLI is not installed: run `make engine`")
        return [docker, "compose", "-f", str(self.file), "-p", self.name, *args]

    def _run(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
        try:
            result = subprocess.run(self._command(*args), capture_output=True, text=True,
                                    env={**os.environ, **self.variables}, timeout=timeout,
                                    stdin=subprocess.DEVNULL, start_new_session=True, check=False)
        except subprocess.TimeoutExpired:
            raise EngineError(f"docker compose {args[0]} did not finish within {timeout:.0f}s") from None
        if result.returncode != 0:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()
            if "is not a docker command" in result.stderr:
                raise FaultError("docker compose (v2) is not installed: run `make engine`")
            raise EngineError(f"docker compose {args[0]} failed (exit {result.returncode}): "
                              f"{said[-1] if said else 'no output'}")
        return result.stdout

    def config(self) -> str:
        """The file as Compose reads it (variables interpolated); raises when Compose refuses it."""
        return self._run("config")

    def up(self, services: Sequence[str]) -> None:
        """Create and start `services` in the background: images only from this machine."""
        self._run("up", "--detach", "--no-build", "--pull", "never", *services)

    def down(self) -> None:
        """Stop and remove every container of the project, and its network."""
        self._run("down", "--remove-orphans", "--timeout", str(STOP_TIMEOUT_S))

    def containers(self) -> list[ComposeContainer]:
        out = self._run("ps", "--all", "--format", "json")
        # Compose writes one JSON object per line (older releases: one JSON array).
        rows: list[dict[str, object]] = []
        for line in out.splitlines():
            line = line.strip()
            if line:
                parsed = json.loads(line)
                rows.extend(parsed if isinstance(parsed, list) else [parsed])
        return [ComposeContainer(str(row.get("Service", "")), str(row.get("Name", "")),
                                 str(row.get("State", ""))) for row in rows]

    def logs(self, service: str, tail: int = 20) -> str:
        with suppress(EngineError):
            return self._run("logs", "--no-color", "--tail", str(tail), service)
        return ""

    def follow_logs(self) -> subprocess.Popen[str]:
        """`docker compose logs --follow` of every service, from now on: one line per log line,
        prefixed with the service. The caller stops it (terminate) when the loop ends."""
        return subprocess.Popen(self._command("logs", "--follow", "--no-color", "--since", "1s"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, **self.variables}, stdin=subprocess.DEVNULL,
                                start_new_session=True, bufsize=1)

    def wait_until_answers(self, service: str, url: str, timeout: float) -> None:
        """Poll `url` until it answers 2xx (`tcp://127.0.0.1:<port>`: until the port accepts
        connections, for a service without a health route); fails with the container's log when
        it exits first."""
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        last_error = "no answer"
        while time.monotonic() < deadline:
            if url.startswith("tcp://"):
                problem = published_port_problem(int(url.rsplit(":", 1)[1]))
                if problem is None:
                    return
                last_error = problem
            else:
                try:
                    with opener.open(url, timeout=2) as response:
                        if 200 <= response.status < 300:
                            return
                        last_error = f"HTTP {response.status}"
                except urllib.error.HTTPError as error:
                    last_error = f"HTTP {error.code}"
                except (OSError, urllib.error.URLError) as error:
                    last_error = str(getattr(error, "reason", error))
            states = {c.service: c.state for c in self.containers()}
            if states.get(service) not in ("running", "restarting", "created"):
                raise FaultError(f"{service} stopped ({states.get(service, 'no container')}) "
                                 f"before {url} answered; its log ends:\n{self.logs(service)}")
            time.sleep(0.5)  # each look at the containers' state is a CLI call
        raise FaultError(f"{service}: {url} did not answer within {timeout:.0f}s ({last_error}); "
                         f"its log ends:\n{self.logs(service)}")


# Compose redraws its log prefixes with terminal escapes even with --no-color when not on a terminal.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def log_lines(process: subprocess.Popen[str]) -> Iterator[str]:
    """The lines a `follow_logs` process writes, until it ends, without terminal escapes."""
    assert process.stdout is not None
    for line in process.stdout:
        yield _ESCAPES.sub("", line.rstrip("\n"))


def stop_following(process: subprocess.Popen[str]) -> None:
    with suppress(ProcessLookupError):
        process.terminate()
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
