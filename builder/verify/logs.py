"""The log rules of `verify`: received log records and spans in, checks out (pure).

A record made while a request is handled carries the ids of the span current at that moment
(OpenTelemetry's logging handler reads them from the context): that is what ties a log line to
its request in Honeycomb. The rules anchor on each smoke request's server span.
"""

from __future__ import annotations

from collections.abc import Sequence

from builder.spec.service import ServiceSpec
from builder.verify.checks import Check, SmokeResponse, label, resource_check, server_span
from builder.verify.receiver import ReceivedLog, ReceivedSpan


def request_records(logs: Sequence[ReceivedLog], spans: Sequence[ReceivedSpan],
                    server: ReceivedSpan) -> list[ReceivedLog]:
    """The records made inside `server`'s trace, under one of its spans."""
    span_ids = {span.span_id for span in spans if span.trace_id == server.trace_id}
    return [record for record in logs
            if record.trace_id == server.trace_id and record.span_id in span_ids]


def check_logs(spec: ServiceSpec, variant: str, responses: Sequence[SmokeResponse],
               logs: Sequence[ReceivedLog], spans: Sequence[ReceivedSpan]) -> list[Check]:
    """Every smoke request with a route logged at least one record correlated to its trace."""
    if not logs:
        return [Check("logs reach the receiver", False,
                      "no log record arrived: OTEL_LOGS_EXPORTER=none, or the export failed "
                      "(the app's log says why)")]
    in_trace = sum(1 for record in logs if record.trace_id)
    checks = [Check("logs reach the receiver", True,
                    f"{len(logs)} records, {in_trace} made inside a trace")]
    for response in responses:
        smoke = response.request
        if smoke.route is None:
            continue
        description = f"{label(smoke)}: log record with the request's trace and span ids"
        server = server_span(spans, smoke.route)
        if server is None:
            checks.append(Check(description, False,
                                f"no server span with http.route={smoke.route} to match against"))
            continue
        same_trace = [record for record in logs if record.trace_id == server.trace_id]
        detail = (f"records with trace id {server.trace_id}: "
                  f"{[(str(r.body)[:60], r.span_id) for r in same_trace]}" if same_trace else
                  f"no record carries trace id {server.trace_id} (does the route log anything "
                  "the app's logging lets through?)")
        checks.append(Check(description, bool(request_records(logs, spans, server)), detail))
    checks.append(resource_check("logs", [record.resource for record in logs], spec.name, variant))
    return checks
