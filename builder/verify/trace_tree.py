"""Received spans → one indented tree per trace, as `verify` prints it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from builder.verify.receiver import AttributeValue, ReceivedSpan

# Shown even though they are standard because they identify what a span did.
_SELECTED_ATTRIBUTES = (
    "http.request.method",
    "http.method",
    "http.route",
    "url.path",
    "http.target",
    "http.status_code",
    "http.response.status_code",
    "rpc.method",
    "db.system",
    "db.system.name",
    "messaging.system",
    "error.type",
)

# Semantic-convention namespaces; attributes outside them are assumed to be
# set by the application and are worth showing.
_STANDARD_NAMESPACES = frozenset((
    "http", "url", "net", "network", "server", "client", "user_agent", "db", "rpc", "messaging",
    "code", "thread", "exception", "otel", "telemetry", "process", "host", "os", "service",
    "error", "peer", "enduser", "faas", "cloud", "container", "k8s", "deployment", "aws", "gcp",
    "azure", "system", "session", "signalr", "aspnetcore", "kestrel", "dotnet", "jvm", "nodejs",
    "v8js", "go", "cpython", "event", "log", "gen_ai", "graphql", "tls", "source",
    "destination", "feature_flag", "browser", "device", "webengine",
))

_MAX_VALUE_CHARS = 60


def _format_value(value: AttributeValue) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


def _span_line(span: ReceivedSpan) -> str:
    status = span.status_code
    if span.status_message:
        status = f"{status}: {span.status_message}"
    duration = f"{span.duration_ms:.1f} ms" if span.end_ns >= span.start_ns > 0 else "? ms"
    shown = [k for k in _SELECTED_ATTRIBUTES if k in span.attributes]
    shown += sorted(
        k
        for k in span.attributes
        if k.split(".", 1)[0] not in _STANDARD_NAMESPACES and k not in shown
    )
    attrs = "".join(f" {k}={_format_value(span.attributes[k])}" for k in shown)
    return f"{span.name} [{span.kind}] {status} ({duration}){attrs}"


def _event_lines(span: ReceivedSpan) -> Iterator[str]:
    for event in span.events:
        if event.name == "exception":
            exc_type = event.attributes.get("exception.type", "?")
            message = event.attributes.get("exception.message", "")
            suffix = f": {_format_value(message)}" if message else ""
            yield f"! exception {exc_type}{suffix}"


def format_trace_tree(spans: Sequence[ReceivedSpan]) -> str:
    """Render spans as one indented tree per trace, ready to print."""
    by_trace: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    ordered = sorted(by_trace.items(), key=lambda item: min(s.start_ns for s in item[1]))
    return "\n".join(_format_trace(trace_id, members) for trace_id, members in ordered)


def _format_trace(trace_id: str, members: list[ReceivedSpan]) -> str:
    members = sorted(members, key=lambda s: (s.start_ns, s.span_id))
    ids = {s.span_id for s in members}
    children: dict[str, list[ReceivedSpan]] = {}
    roots: list[ReceivedSpan] = []
    for span in members:
        if span.parent_span_id is None or span.parent_span_id not in ids:
            roots.append(span)
        else:
            children.setdefault(span.parent_span_id, []).append(span)

    services = sorted({s.service_name for s in members if s.service_name})
    header = f"trace {trace_id}"
    if services:
        header += f" ({', '.join(services)})"
    lines = [header]
    visited: set[int] = set()

    def walk(span: ReceivedSpan, depth: int, note: str = "") -> None:
        # id() rather than span_id: retried exports can deliver the same span
        # twice, and both copies should be shown.
        if id(span) in visited:
            return
        visited.add(id(span))
        indent = "  " * depth
        lines.append(f"{indent}{_span_line(span)}{note}")
        lines.extend(f"{indent}    {line}" for line in _event_lines(span))
        for child in children.get(span.span_id, []):
            walk(child, depth + 1)

    for root in roots:
        note = ""
        if root.parent_span_id is not None:
            note = f" (parent {root.parent_span_id} not received)"
        walk(root, 1, note)
    # Spans only reachable through a parent cycle would otherwise vanish.
    for span in members:
        if id(span) not in visited:
            walk(span, 1, " (in parent cycle)")
    return "\n".join(lines)
