"""Received spans → the map of how services call each other. Pure: spans in, a map out.

Nodes are `service.name`s. An edge is a CLIENT span in one service that is the parent of a SERVER
span in another: the caller's instrumentation injected its context into the request and the
callee's picked it up, so both halves of the call are in one trace. Each edge counts the calls,
the failed ones (either half with status ERROR) and the caller's median latency (the CLIENT span's
duration: what the caller waited, network included).

A CLIENT span that no SERVER span answers is a call leaving the services seen: to something not
instrumented (a database, a third-party API), to a service that was not running (the sample
apps' call fails soft), or to one that did not pick up the trace context. Those are kept per
caller and peer (`server.address` and the older attribute names), so a call that should have been
joined can be told apart (`unjoined_calls`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

from builder.verify.receiver import ReceivedSpan

UNKNOWN_SERVICE = "(no service.name)"
UNKNOWN_PEER = "(unknown peer)"
# Where instrumentations record whom a client called: stable semconv first, then the older names
# the Python instrumentations still emit by default, then full URLs.
_PEER_HOST_ATTRIBUTES = ("server.address", "net.peer.name", "peer.service")
_PEER_URL_ATTRIBUTES = ("url.full", "http.url")


@dataclass(frozen=True)
class Node:
    service: str
    spans: int
    requests: int  # SERVER spans: requests the service answered
    errors: int  # of those, with status ERROR


class _Calls:
    """What a group of calls reports, from their CLIENT spans' durations (one per call)."""

    latencies_ms: tuple[float, ...]

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)


@dataclass(frozen=True)
class Edge(_Calls):
    caller: str
    callee: str
    latencies_ms: tuple[float, ...]  # one per call: the CLIENT span's duration
    errors: int


@dataclass(frozen=True)
class ExternalCall(_Calls):
    """Calls from `caller` that no received SERVER span answered, grouped by the peer called."""

    caller: str
    peer: str
    latencies_ms: tuple[float, ...]
    errors: int


@dataclass(frozen=True)
class ServiceMap:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    external: tuple[ExternalCall, ...]

    def edge(self, caller: str, callee: str) -> Edge | None:
        return next((e for e in self.edges if (e.caller, e.callee) == (caller, callee)), None)

    def depths(self) -> dict[str, int]:
        """How far down the call chain each service sits: 0 for services nothing calls, else one
        more than its deepest caller (a call cycle stops growing after one round)."""
        depth = {node.service: 0 for node in self.nodes}
        for _ in range(len(self.nodes)):
            changed = False
            for edge in self.edges:
                wanted = depth[edge.caller] + 1
                if wanted > depth[edge.callee] and wanted < len(self.nodes):
                    depth[edge.callee] = wanted
                    changed = True
            if not changed:
                break
        return depth


def service_of(span: ReceivedSpan) -> str:
    return span.service_name or UNKNOWN_SERVICE


def peer_of(span: ReceivedSpan) -> str:
    """Whom a CLIENT span called, as its attributes say (host, with the port when known)."""
    attributes = span.attributes
    host = next((str(attributes[key]) for key in _PEER_HOST_ATTRIBUTES if attributes.get(key)), "")
    port = attributes.get("server.port") or attributes.get("net.peer.port")
    if not host:
        url = next((str(attributes[key]) for key in _PEER_URL_ATTRIBUTES if attributes.get(key)), "")
        parts = urlsplit(url)
        host = parts.hostname or ""
        with suppress(ValueError):  # a port that is not a number: the host alone says enough
            port = port or parts.port
    if not host:
        return UNKNOWN_PEER
    return f"{host}:{port}" if port else host


def peer_host(peer: str) -> str:
    return peer.rsplit(":", 1)[0] if ":" in peer else peer


def build_service_map(spans: Iterable[ReceivedSpan]) -> ServiceMap:
    unique: dict[tuple[str, str], ReceivedSpan] = {}
    for span in spans:
        # Retried exports can deliver a span twice; it happened once.
        unique.setdefault((span.trace_id, span.span_id), span)
    members = list(unique.values())

    answered: set[tuple[str, str]] = set()  # CLIENT spans a SERVER span in another service joined
    has_client_child: set[tuple[str, str]] = set()
    edge_calls: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for span in members:
        if span.parent_span_id is None:
            continue
        parent = unique.get((span.trace_id, span.parent_span_id))
        if parent is None or parent.kind != "CLIENT":
            continue
        if span.kind == "CLIENT":
            has_client_child.add((parent.trace_id, parent.span_id))
        if span.kind != "SERVER" or service_of(parent) == service_of(span):
            continue
        answered.add((parent.trace_id, parent.span_id))
        failed = "ERROR" in (parent.status_code, span.status_code)
        edge_calls.setdefault((service_of(parent), service_of(span)), []).append(
            (parent.duration_ms, failed))

    external_calls: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for span in members:
        key = (span.trace_id, span.span_id)
        # A CLIENT span wrapping another CLIENT span (requests over urllib3, say) is one call:
        # the innermost one carried the context, and is the one counted.
        if span.kind != "CLIENT" or key in answered or key in has_client_child:
            continue
        external_calls.setdefault((service_of(span), peer_of(span)), []).append(
            (span.duration_ms, span.status_code == "ERROR"))

    services = sorted({service_of(span) for span in members})
    nodes = tuple(
        Node(service,
             spans=sum(1 for s in members if service_of(s) == service),
             requests=sum(1 for s in members if service_of(s) == service and s.kind == "SERVER"),
             errors=sum(1 for s in members if service_of(s) == service and s.kind == "SERVER"
                        and s.status_code == "ERROR"))
        for service in services)
    edges = tuple(Edge(caller, callee, *_latencies_and_errors(calls))
                  for (caller, callee), calls in sorted(edge_calls.items()))
    external = tuple(ExternalCall(caller, peer, *_latencies_and_errors(calls))
                     for (caller, peer), calls in sorted(external_calls.items()))
    return ServiceMap(nodes, edges, external)


def _latencies_and_errors(calls: list[tuple[float, bool]]) -> tuple[tuple[float, ...], int]:
    return tuple(ms for ms, _ in calls), sum(failed for _, failed in calls)


def unjoined_calls(service_map: ServiceMap, running: Sequence[str]) -> list[ExternalCall]:
    """Calls to a service that was running but whose SERVER span did not join the caller's trace:
    the callee answered under a trace of its own (context not propagated), or never answered."""
    names = set(running)
    return [call for call in service_map.external if peer_host(call.peer) in names]
