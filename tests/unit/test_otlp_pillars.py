"""The receiver's metrics and logs, exported by the real OpenTelemetry SDK over loopback sockets."""

from __future__ import annotations

import json
import logging
import urllib.request
import warnings
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from builder.verify.receiver import Arrival, OtlpReceiver, Telemetry

RESOURCE = Resource.create({"service.name": "checkout", "io.imagewright.variant": "prod"})


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(host="127.0.0.1") as running:
        yield running


def _export_metrics(receiver: OtlpReceiver, **exporter_kwargs: object) -> None:
    exporter = OTLPMetricExporter(endpoint=receiver.metrics_url(), timeout=5,
                                  headers={"x-honeycomb-dataset": "checkout-metrics"},
                                  **exporter_kwargs)  # type: ignore[arg-type]
    # A reader that never fires by itself: force_flush exports exactly once.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("imagewright.tests")
    duration = meter.create_histogram("http.server.request.duration", unit="s")
    duration.record(0.25, {"http.route": "/orders/{id}", "http.response.status_code": 200})
    duration.record(0.75, {"http.route": "/orders/{id}", "http.response.status_code": 200})
    active = meter.create_up_down_counter("http.server.active_requests", unit="{request}")
    active.add(1, {"http.request.method": "GET"})
    active.add(-1, {"http.request.method": "GET"})
    meter.create_counter("orders.placed").add(3, {"order.vip": True})

    def memory(options: CallbackOptions) -> Iterator[Observation]:
        yield Observation(1.5, {"state": "used"})

    meter.create_observable_gauge("process.memory.utilization", [memory], unit="1")
    provider.shutdown()  # collects and exports once


def test_sdk_metrics_are_decoded_with_kind_unit_points_resource_and_headers(
    receiver: OtlpReceiver,
) -> None:
    _export_metrics(receiver)

    metrics = {m.name: m for m in receiver.metrics()}
    assert set(metrics) == {"http.server.request.duration", "http.server.active_requests",
                            "orders.placed", "process.memory.utilization"}
    duration = metrics["http.server.request.duration"]
    assert (duration.kind, duration.unit, duration.temporality) == ("histogram", "s", "CUMULATIVE")
    (point,) = duration.points
    assert point.attributes == {"http.route": "/orders/{id}", "http.response.status_code": 200}
    assert (point.count, point.sum, point.min, point.max) == (2, 1.0, 0.25, 0.75)
    assert point.value is None and 0 < point.start_ns <= point.time_ns
    active = metrics["http.server.active_requests"]
    assert (active.kind, active.unit, active.monotonic) == ("sum", "{request}", False)
    assert [(p.attributes, p.value) for p in active.points] == [({"http.request.method": "GET"}, 0)]
    placed = metrics["orders.placed"]
    assert (placed.kind, placed.monotonic, placed.points[0].value) == ("sum", True, 3)
    gauge = metrics["process.memory.utilization"]
    assert (gauge.kind, gauge.temporality, gauge.points[0].value) == ("gauge", "", 1.5)
    assert duration.service_name == "checkout"
    assert duration.resource["io.imagewright.variant"] == "prod"
    assert duration.scope_name == "imagewright.tests"
    assert duration.headers["x-honeycomb-dataset"] == "checkout-metrics"
    assert receiver.metrics_requests == 1 and receiver.errors == []


def test_gzip_compressed_metrics_are_decoded(receiver: OtlpReceiver) -> None:
    _export_metrics(receiver, compression=Compression.Gzip)

    assert "http.server.request.duration" in {m.name for m in receiver.metrics()}
    assert receiver.metrics()[0].headers["content-encoding"] == "gzip"
    assert receiver.errors == []


def _log_inside_a_span(receiver: OtlpReceiver) -> tuple[str, str]:
    """One record outside any span and two inside one; returns that span's (trace id, span id)."""
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=receiver.logs_url(), timeout=5)))
    logger = logging.getLogger("imagewright.tests.orders")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    # The images use opentelemetry-instrumentation-logging's handler, which sends the same OTLP;
    # the SDK's own one is deprecated in its favour, but is what the test dependencies have.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        logger.info("starting up")
        with TracerProvider().get_tracer("t").start_as_current_span("GET /orders/{id}") as span:
            logger.warning("order %s is late", 42, extra={"order.id": 42})
            try:
                raise KeyError("order 42")
            except KeyError:
                logger.exception("lookup failed")
            context = span.get_span_context()
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def test_sdk_log_records_carry_body_severity_and_the_current_span(receiver: OtlpReceiver) -> None:
    trace_id, span_id = _log_inside_a_span(receiver)

    outside, late, failed = receiver.logs()
    assert (outside.body, outside.severity, outside.severity_number) == ("starting up", "INFO", 9)
    assert (outside.trace_id, outside.span_id) == (None, None)
    assert (late.body, late.severity, late.severity_number) == ("order 42 is late", "WARN", 13)
    assert (late.trace_id, late.span_id) == (trace_id, span_id)
    assert late.attributes["order.id"] == 42
    assert (failed.severity, failed.trace_id) == ("ERROR", trace_id)
    assert failed.attributes["exception.type"] == "KeyError"
    assert late.service_name == "checkout" and late.scope_name == "imagewright.tests.orders"
    assert late.time_ns > 0 and late.headers["content-type"] == "application/x-protobuf"
    assert receiver.logs_requests == 3 and receiver.errors == []


def test_otlp_json_logs_are_decoded_with_hex_ids(receiver: OtlpReceiver) -> None:
    document = {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
        "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [{
            "timeUnixNano": "1000", "severityNumber": 17, "body": {"stringValue": "boom"},
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "attributes": [{"key": "code", "value": {"intValue": "7"}}],
        }]}],
    }]}
    request = urllib.request.Request(receiver.logs_url(), data=json.dumps(document).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert (response.status, json.loads(response.read())) == (200, {})

    (record,) = receiver.logs()
    assert (record.body, record.severity, record.attributes) == ("boom", "ERROR", {"code": 7})
    assert (record.trace_id, record.span_id) == ("5b8efff798038103d269b633813fc60c",
                                                 "eee19b7ec3c1b174")
    assert record.service_name == "web"


def test_subscribers_follow_every_arrival_and_wait_for_sees_all_pillars(
    receiver: OtlpReceiver,
) -> None:
    arrivals: list[Arrival] = []
    unsubscribe = receiver.subscribe(arrivals.append)
    receiver.subscribe(lambda arrival: 1 / 0)  # a broken subscriber costs nobody anything

    _log_inside_a_span(receiver)
    _export_metrics(receiver)
    telemetry = receiver.wait_for(lambda t: len(t.logs) == 3 and bool(t.metrics), timeout=3)

    assert [a.signal for a in arrivals] == ["logs", "logs", "logs", "metrics"]
    assert [len(a.items) for a in arrivals] == [1, 1, 1, 4]
    assert arrivals[0].items[0] == telemetry.logs[0]
    assert isinstance(telemetry, Telemetry) and telemetry.spans == ()
    assert receiver.errors == []
    unsubscribe()
    _export_metrics(receiver)
    assert len(arrivals) == 4, "no arrivals after unsubscribing"


def test_wait_for_times_out_saying_what_each_pillar_got(receiver: OtlpReceiver) -> None:
    _export_metrics(receiver)
    with pytest.raises(TimeoutError, match=r"4 metric\(s\) in 1 metrics and 0 log record\(s\)"):
        receiver.wait_for(lambda t: bool(t.logs), timeout=0.2)
    receiver.reset()
    assert receiver.telemetry() == Telemetry() and receiver.metrics_requests == 0
