"""The metrics rules of `verify`: received metrics in, checks out (pure, like `check_spans`).

What the images export is set in templates/_partials/macros.j2 (`environment`): the HTTP server
metrics the web framework instrumentations record, under the stable HTTP conventions
(`OTEL_SEMCONV_STABILITY_OPT_IN=http`: the duration histogram then carries `http.route`), and the
process metrics of the system-metrics instrumentation, the host-wide `system.*` left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from builder.spec.service import ServiceSpec
from builder.verify.checks import Check, SmokeResponse, label, resource_check
from builder.verify.receiver import MetricPoint, ReceivedMetric


@dataclass(frozen=True)
class ExpectedMetric:
    name: str
    unit: str | None  # None: any unit (the release line leaves some unset)

    def __str__(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def matches(self, metric: ReceivedMetric) -> bool:
        return metric.name == self.name and self.unit in (None, metric.unit)


HTTP_SERVER_DURATION = ExpectedMetric("http.server.request.duration", "s")
HTTP_ACTIVE_REQUESTS = ExpectedMetric("http.server.active_requests", "{request}")
# CPU, memory, threads and garbage collection: what the process itself costs.
PROCESS_METRICS = (
    ExpectedMetric("process.cpu.time", "s"),
    ExpectedMetric("process.memory.usage", "By"),
    ExpectedMetric("process.thread.count", None),
    ExpectedMetric("cpython.gc.collections", "{collection}"),
)


def points_of(metrics: Sequence[ReceivedMetric], expected: ExpectedMetric) -> list[MetricPoint]:
    return [point for metric in metrics if expected.matches(metric) for point in metric.points]


def route_points(metrics: Sequence[ReceivedMetric], route: str, status: int) -> list[MetricPoint]:
    """The request-duration data points recorded for `route` answering `status`."""
    return [point for point in points_of(metrics, HTTP_SERVER_DURATION)
            if point.attributes.get("http.route") == route
            and point.attributes.get("http.response.status_code") == status
            and (point.count or 0) > 0]


def check_metrics(spec: ServiceSpec, variant: str, responses: Sequence[SmokeResponse],
                  metrics: Sequence[ReceivedMetric]) -> list[Check]:
    """What a correctly instrumented image of `spec` must have exported as metrics."""
    if not metrics:
        return [Check("metrics reach the receiver", False,
                      "no metric arrived: OTEL_METRICS_EXPORTER=none, or the export failed "
                      "(the app's log says why)")]
    names = sorted({metric.name for metric in metrics})
    checks = [Check("metrics reach the receiver", True,
                    f"{len(names)} metrics, {sum(len(m.points) for m in metrics)} data points")]
    seen = sorted({f"{m.name} ({m.unit}) http.route={p.attributes.get('http.route')} "
                   f"status {p.attributes.get('http.response.status_code')}"
                   for m in metrics if m.name == HTTP_SERVER_DURATION.name for p in m.points})
    for response in responses:
        smoke = response.request
        # A 5xx is left out: Flask's instrumentation records no duration for a request whose
        # exception reaches the server (debug mode lets it: the dev image); its span and its log
        # records prove the request was seen.
        if smoke.route is None or smoke.status >= 500:
            continue
        checks.append(Check(
            f"{label(smoke)}: metric {HTTP_SERVER_DURATION} with http.route={smoke.route}, "
            f"status {smoke.status}",
            bool(route_points(metrics, smoke.route, smoke.status)),
            f"received duration points: {seen or 'none'}"))
    checks.append(Check(f"metric {HTTP_ACTIVE_REQUESTS}",
                        bool(points_of(metrics, HTTP_ACTIVE_REQUESTS)), f"received: {names}"))
    missing = [str(expected) for expected in PROCESS_METRICS if not points_of(metrics, expected)]
    checks.append(Check("process metrics: " + ", ".join(map(str, PROCESS_METRICS)), not missing,
                        f"missing {missing}; received: {names}"))
    checks.append(resource_check("metrics", [m.resource for m in metrics], spec.name, variant))
    return checks
