"""Every container imagewright starts goes through here: labelled, on free ports, always removed.

Removal happens in `finally`, so errors and Ctrl-C clean up too. An interrupt can also land while
the engine is creating a container, before its id is known here; every container therefore carries
this process's run id, and `remove_own_containers` sweeps them by label once the work is
abandoned. `clean` removes what a killed process left behind.
"""

from __future__ import annotations

import os
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


@dataclass(frozen=True)
class RunningService:
    container: Container
    base_url: str
    created_at: float  # time.monotonic() just before create
    running_at: float  # time.monotonic() once the engine reported it started

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
        container.start()
        running_at = time.monotonic()
        container.reload()
        bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
        if not bindings:
            raise FaultError(f"{image}: port {port} was not published (did the container exit? "
                             f"{container.logs(tail=10).decode('utf-8', 'replace')})")
        host_port = bindings[0]["HostPort"]
        yield RunningService(container, f"http://127.0.0.1:{host_port}", created_at, running_at)
    finally:
        _remove(container)


def wait_until_answers(service: RunningService, path: str, timeout: float) -> float:
    """Poll `path` until it answers 2xx; returns time.monotonic() of that first answer."""
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            with opener.open(service.base_url + path, timeout=2) as response:
                if 200 <= response.status < 300:
                    return time.monotonic()
                last_error = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code}"
        except (OSError, urllib.error.URLError) as error:
            last_error = str(getattr(error, "reason", error))
        service.container.reload()
        if service.container.status in ("exited", "dead"):
            raise FaultError(f"container exited before {path} answered; its log ends:\n"
                             f"{service.logs()}")
        time.sleep(0.05)
    raise FaultError(f"{path} did not answer within {timeout:.0f}s ({last_error}); the "
                     f"container's log ends:\n{service.logs()}")


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
