"""Every container imagewright starts goes through here: labelled, on free ports, always removed.

Removal happens in `finally`, so errors and Ctrl-C clean up too. An interrupt can also land while
the engine is creating a container, before its id is known here; every container therefore carries
this process's run id, and `remove_own_containers` sweeps them by label once the work is
abandoned. `clean` removes what a killed process left behind.
"""

from __future__ import annotations

import errno
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import docker.errors
from docker.models.containers import Container

from builder.core.errors import FaultError
from builder.engine.client import Engine, connect
from builder.naming import HOST_ALIAS, MANAGED_LABEL, PURPOSE_LABEL, RUN_LABEL, network_name

HARDENED = {"read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}


PROCESS_RUN_ID = f"{os.getpid()}-{time.time_ns()}"


def labels(purpose: str) -> dict[str, str]:
    return {MANAGED_LABEL: "1", RUN_LABEL: PROCESS_RUN_ID, PURPOSE_LABEL: purpose}


@contextmanager
def created_container(engine: Engine, image: str) -> Iterator[Container]:
    """A container that is created but never started: for reading its filesystem."""
    container = engine.sdk.containers.create(image, labels=labels("inspect"), entrypoint=[],
                                         command=["/nonexistent"], network_disabled=True)
    try:
        yield container
    finally:
        _remove(container)


class NotReadyError(FaultError):
    """The service never became ready: it exited, or its health check never passed in time."""

    def __init__(self, what: str, reason: str, log: str) -> None:
        super().__init__(f"{what}: {reason}; the container's log ends:\n{log}")
        self.what = what  # e.g. "/api/health answers 2xx within 60s"
        self.reason = reason
        self.log = log


@dataclass(frozen=True)
class Process:
    """One process of a running container, as the engine's `top` lists it (host pid numbers)."""

    pid: int
    ppid: int
    args: str


@dataclass(frozen=True)
class RunningService:
    container: Container
    base_url: str
    created_at: float  # time.monotonic() just before create
    running_at: float  # time.monotonic() once the engine reported it started
    port: int = 0  # the service's port inside the container
    address: str = ""  # the container's own address on the engine's bridge ("" if it has none)

    def processes(self) -> list[Process]:
        """Every process in the container; works without a shell or ps in the image."""
        try:
            listing = self.container.top(ps_args="-o pid,ppid,args")
        except docker.errors.APIError:
            return []
        titles = [title.upper() for title in listing.get("Titles") or []]
        found: list[Process] = []
        for row in listing.get("Processes") or []:
            fields = dict(zip(titles, row, strict=False))
            try:
                found.append(Process(int(fields["PID"]), int(fields["PPID"]),
                                     str(fields.get("COMMAND") or fields.get("ARGS") or "")))
            except (KeyError, ValueError):
                continue
        return found

    def workers(self) -> list[Process]:
        """The processes the main one started to serve requests (a pre-fork server's workers):
        its children, minus multiprocessing's helper processes. Empty for a single process."""
        processes = self.processes()
        pids = {process.pid for process in processes}
        main = [process for process in processes if process.ppid not in pids]
        if len(main) != 1:
            return []
        return [process for process in processes if process.ppid == main[0].pid
                and "multiprocessing.resource_tracker" not in process.args]

    def exit_code(self) -> int | None:
        """The container's exit code once it has stopped, else None."""
        self.container.reload()
        if self.container.status not in ("exited", "dead"):
            return None
        return int((self.container.attrs.get("State") or {}).get("ExitCode") or 0)

    def memory_usage(self) -> int:
        """Resident memory in bytes: cgroup v2 counts page cache in usage; "anon" is the heap."""
        memory = self.container.stats(stream=False).get("memory_stats", {})
        return int(memory.get("stats", {}).get("anon") or memory.get("usage") or 0)

    def logs(self, tail: int = 30) -> str:
        try:
            return self.container.logs(tail=tail).decode("utf-8", "replace")
        except docker.errors.APIError:
            return ""


@contextmanager
def private_network(engine: Engine, purpose: str = "verify") -> Iterator[str]:
    """A user-defined bridge network of this run, labelled like its containers; removed on exit.
    Containers on it find each other by their aliases (the engine's embedded DNS), as in Compose."""
    network = engine.sdk.networks.create(network_name(PROCESS_RUN_ID, time.time_ns()),
                                         driver="bridge", labels=labels(purpose))
    try:
        yield str(network.name)
    finally:
        with suppress(docker.errors.NotFound):
            network.remove()


@contextmanager
def running_service(engine: Engine, image: str, port: int, *,
                    env: dict[str, str] | None = None, hardened: bool = True,
                    entrypoint: list[str] | None = None, command: list[str] | None = None,
                    purpose: str = "verify", network: str | None = None,
                    aliases: tuple[str, ...] = ()) -> Iterator[RunningService]:
    """Start `image` with its `port` published on a free loopback port; removed on exit. On a
    `network` (see `private_network`), other containers there reach it by its `aliases`."""
    created_at = time.monotonic()
    options: dict[str, object] = dict(HARDENED) if hardened else {}
    if entrypoint is not None:
        options["entrypoint"] = entrypoint
    if network is not None:
        options["network"] = network
        options["networking_config"] = {
            network: engine.sdk.api.create_endpoint_config(aliases=list(aliases) or None)}
    try:
        container = engine.sdk.containers.create(
            image, command=command, environment=env or {}, labels=labels(purpose),
            ports={f"{port}/tcp": ("127.0.0.1", None)}, extra_hosts={HOST_ALIAS: "host-gateway"},
            detach=True, **options,
        )
    except docker.errors.ImageNotFound:
        raise FaultError(f"image {image} not found: build it first") from None
    try:
        try:
            container.start()
        except docker.errors.APIError as error:  # e.g. the entrypoint is not in the image
            raise NotReadyError(f"{image} starts", "the engine could not start it: "
                                f"{error.explanation or error}", "") from None
        running_at = time.monotonic()
        container.reload()
        settings = container.attrs["NetworkSettings"]
        bindings = (settings.get("Ports") or {}).get(f"{port}/tcp") or []
        if not bindings:
            log = container.logs(tail=15).decode("utf-8", "replace")
            code = (container.attrs.get("State") or {}).get("ExitCode")
            raise NotReadyError(f"{image} starts", f"the container exited with code {code} at "
                                "once", log)
        host_port = bindings[0]["HostPort"]
        # Its own address: on the default bridge, or on the network it was started on.
        address = settings.get("IPAddress") or next(
            (n.get("IPAddress") for n in (settings.get("Networks") or {}).values()
             if n.get("IPAddress")), "")
        yield RunningService(container, f"http://127.0.0.1:{host_port}", created_at, running_at,
                             port, str(address))
    finally:
        _remove(container)


def readiness(path: str | None, port: int, timeout: float) -> str:
    """What being ready means for a service, as checks and messages name it."""
    if path is None:
        return f"port {port} accepts connections within {timeout:.0f}s"
    return f"{path} answers 2xx within {timeout:.0f}s"


def wait_until_ready(service: RunningService, path: str | None, timeout: float) -> float:
    """Until `path` answers 2xx, or with no health path until the port accepts connections (as the
    image's HEALTHCHECK decides); returns time.monotonic() of that moment. Raises NotReadyError
    when the container exits first or time runs out."""
    deadline = time.monotonic() + timeout
    what = readiness(path, service.port, timeout)
    last_error = "no answer"
    while time.monotonic() < deadline:
        problem = _not_ready(service, path)
        if problem is None:
            return time.monotonic()
        last_error = problem
        code = service.exit_code()
        if code is not None:
            raise NotReadyError(what, f"the container exited with code {code} first",
                                service.logs())
        time.sleep(0.05)
    raise NotReadyError(what, f"not ready in time ({last_error})", service.logs())


def _not_ready(service: RunningService, path: str | None) -> str | None:
    """None when ready, else why not."""
    if path is None:
        return _port_closed(service)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(service.base_url + path, timeout=2) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (OSError, urllib.error.URLError) as error:
        return str(getattr(error, "reason", error))


def _port_closed(service: RunningService) -> str | None:
    """None once the app listens. Asked at the container's own address: the published port is the
    engine's proxy, which accepts a connection even before the app listens (and then drops it)."""
    if service.address:
        try:
            with socket.create_connection((service.address, service.port), timeout=1):
                return None
        except OSError as error:
            if error.errno == errno.ECONNREFUSED:
                return "connection refused"
            # The bridge isn't reachable from here (e.g. a VM between us and the engine).
    return published_port_problem(int(service.base_url.rsplit(":", 1)[1]))


def published_port_problem(host_port: int) -> str | None:
    """None once something listens behind a port the engine published on loopback. Its proxy
    accepts the connection either way, and closes it at once when nothing listens behind it; a
    server waits for the request."""
    try:
        connection = socket.create_connection(("127.0.0.1", host_port), timeout=1)
    except OSError as error:
        return str(error)
    with connection:
        connection.settimeout(0.2)
        try:
            return "connection closed by the engine's proxy" if connection.recv(1) == b"" else None
        except TimeoutError:
            return None
        except OSError as error:
            return str(error)


def managed_containers(engine: Engine) -> list[str]:
    """Names of the containers imagewright labelled."""
    return [_name(row) for row in _labelled(engine, f"{MANAGED_LABEL}=1")]


def remove_leftovers(engine: Engine) -> list[str]:
    """Remove every container imagewright labelled (then its labelled networks); returns the
    containers' names."""
    return _remove_labelled(engine, f"{MANAGED_LABEL}=1")


def remove_own_containers(engine: Engine) -> list[str]:
    """Remove the containers this process made, including one whose creation was interrupted
    (then its networks)."""
    return _remove_labelled(engine, f"{RUN_LABEL}={PROCESS_RUN_ID}")


def managed_networks(engine: Engine) -> list[str]:
    """Names of the networks imagewright labelled (`verify`'s, and the dev loop's Compose one)."""
    return [str(row["Name"]) for row in engine.sdk.api.networks(filters={"label": f"{MANAGED_LABEL}=1"})]


def sweep_own_containers() -> None:
    """After an interrupt: `finally` blocks removed what they knew of; this catches a container
    whose creation the interrupt cut short (the engine made it, its id never came back). With no
    engine to reach, nothing of ours runs."""
    with suppress(FaultError, docker.errors.DockerException):
        remove_own_containers(connect())


def _remove_labelled(engine: Engine, label: str) -> list[str]:
    rows = _labelled(engine, label)
    for row in rows:
        with _gone_or_going():
            engine.sdk.api.remove_container(row["Id"], force=True, v=True)
    # Networks after their containers: the engine refuses to remove one that is still in use.
    for network in engine.sdk.api.networks(filters={"label": label}):
        with suppress(docker.errors.NotFound, docker.errors.APIError):
            engine.sdk.api.remove_network(network["Id"])
    return [_name(row) for row in rows]


@contextmanager
def _gone_or_going() -> Iterator[None]:
    """A container removed meanwhile, or whose removal another process has begun (the engine
    answers 409 "removal … is already in progress"), is as good as removed."""
    try:
        yield
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as error:
        if error.status_code != 409 or "already in progress" not in str(error.explanation):
            raise


def _labelled(engine: Engine, label: str) -> list[dict[str, Any]]:
    """The low-level listing inspects no container, so one removed meanwhile (by the run that
    made it) cannot make this fail."""
    return list(engine.sdk.api.containers(all=True, filters={"label": label}))


def _name(row: dict[str, Any]) -> str:
    return row["Names"][0].lstrip("/") if row.get("Names") else row["Id"][:12]


def _remove(container: Container) -> None:
    with _gone_or_going():
        container.remove(force=True, v=True)


def run_to_completion(engine: Engine, image: str, entrypoint: list[str],
                      command: list[str] | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run a one-off command in `image`; returns (exit code, combined output)."""
    container = engine.sdk.containers.create(image, entrypoint=entrypoint, command=command,
                                         labels=labels("probe"), network_disabled=True,
                                         **HARDENED)
    try:
        container.start()
        status = container.wait(timeout=timeout)
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        return int(status.get("StatusCode", 1)), output
    finally:
        _remove(container)
