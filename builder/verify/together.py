"""Services verified together: all on one private network, their calls to each other traced.

Each service's container joins a network of this run under its service name as alias, so one
service reaches another at `http://<service>:<port>` — the address Compose gives it too. The smoke
requests of every service are sent a few rounds; the spans that arrive make the service map.
`check_together` is pure, like `check_spans`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass

from builder.engine.client import Engine
from builder.engine.containers import (
    NotReadyError,
    private_network,
    running_service,
    wait_until_ready,
)
from builder.spec.service import ServiceSpec
from builder.verify.receiver import OtlpReceiver, ReceivedSpan
from builder.verify.service_map import ServiceMap, build_service_map, unjoined_calls
from builder.verify.spans import Check, SmokeResponse, otel_env, send, server_span

ROUNDS = 3
# Spans of one request come from several processes, each exporting on its own schedule: the map
# is built once nothing new has arrived for this long.
QUIET_S = 1.0


@dataclass(frozen=True)
class ServiceResponse:
    service: str
    response: SmokeResponse


@dataclass(frozen=True)
class TogetherReport:
    variant: str
    images: tuple[tuple[str, str], ...]  # (service, image)
    checks: tuple[Check, ...]
    spans: tuple[ReceivedSpan, ...]
    service_map: ServiceMap

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(service for service, _ in self.images)


def check_together(specs: Sequence[ServiceSpec], responses: Sequence[ServiceResponse],
                   spans: Sequence[ReceivedSpan], service_map: ServiceMap) -> list[Check]:
    """Every smoke request answered as its spec says and was traced by its own service; every call
    from one running service to another joined the callee's server span to the caller's trace."""
    checks: list[Check] = []
    for spec in specs:
        mine = [r.response for r in responses if r.service == spec.name]
        wrong = [f"{r.request.method} {r.request.path} → {r.status}" for r in mine
                 if r.status != r.request.status]
        checks.append(Check(f"{spec.name}: every smoke request answers as specified", not wrong,
                            f"unexpected: {wrong}"))
        own = [s for s in spans if s.service_name == spec.name]
        missing = [smoke.route for smoke in spec.smoke
                   if smoke.route and server_span(own, smoke.route) is None]
        checks.append(Check(f"{spec.name}: a server span for every smoke route", not missing,
                            f"missing: {missing}"))
    names = [spec.name for spec in specs]
    unjoined = unjoined_calls(service_map, names)
    checks.append(Check(
        "calls between the services carry the trace context (each joins the callee's server span)",
        not unjoined,
        "; ".join(f"{call.caller} → {call.peer}: {call.requests} call(s) no server span joined"
                  for call in unjoined)))
    return checks


def verify_together(engine: Engine, specs: Sequence[ServiceSpec], variant: str,
                    images: dict[str, str], *, rounds: int = ROUNDS, span_timeout: float = 20,
                    health_timeout: float = 60) -> TogetherReport:
    """Run every service's `images[name]` on one private network, send every smoke request
    `rounds` times, and build the service map from the spans that arrive."""
    with OtlpReceiver() as receiver:
        try:
            responses = _run_together(engine, specs, variant, images, receiver, rounds,
                                      span_timeout, health_timeout)
        except NotReadyError as error:  # one service never got ready: that is the finding
            log = error.log.strip() or "(empty)"
            failed = Check(f"every service gets ready: {error.what}", False,
                           f"{error.reason}; the container's log ends:\n{log}")
            return TogetherReport(variant, tuple((spec.name, images[spec.name]) for spec in specs),
                                  (failed,), tuple(receiver.spans()), build_service_map([]))
    spans = receiver.spans()
    service_map = build_service_map(spans)
    checks = check_together(specs, responses, spans, service_map)
    return TogetherReport(variant, tuple((spec.name, images[spec.name]) for spec in specs),
                          tuple(checks), tuple(spans), service_map)


def _run_together(engine: Engine, specs: Sequence[ServiceSpec], variant: str,
                  images: dict[str, str], receiver: OtlpReceiver, rounds: int,
                  span_timeout: float, health_timeout: float) -> list[ServiceResponse]:
    """Start them all, wait until each is ready, send the rounds; every container is removed
    before this returns. A service that never gets ready raises NotReadyError naming it."""
    with ExitStack() as stack:
        network = stack.enter_context(private_network(engine, purpose="verify-together"))
        running = {spec.name: stack.enter_context(running_service(
            engine, images[spec.name], spec.port, env=otel_env(receiver),
            hardened=variant == "prod", purpose="verify-together", network=network,
            aliases=(spec.name,))) for spec in specs}
        for spec in specs:
            try:
                wait_until_ready(running[spec.name], spec.health_path, timeout=health_timeout)
            except NotReadyError as error:
                raise NotReadyError(f"{spec.name}: {error.what}", error.reason,
                                    error.log) from None
        responses = [ServiceResponse(spec.name, send(running[spec.name], smoke))
                     for _ in range(rounds) for spec in specs for smoke in spec.smoke]
        routes = [(spec.name, smoke.route) for spec in specs for smoke in spec.smoke if smoke.route]

        def every_route_traced(spans: list[ReceivedSpan]) -> bool:
            return all(server_span([s for s in spans if s.service_name == name], route)
                       for name, route in routes)

        with suppress(TimeoutError):  # the checks say what is missing
            receiver.wait_for_spans(every_route_traced, timeout=span_timeout)
        _settle(receiver, deadline=time.monotonic() + span_timeout)
    return responses


def _settle(receiver: OtlpReceiver, deadline: float) -> None:
    """Until no span has arrived for QUIET_S (or the deadline)."""
    seen, quiet_since = len(receiver.spans()), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET_S:
        time.sleep(0.1)
        count = len(receiver.spans())
        if count != seen:
            seen, quiet_since = count, time.monotonic()
