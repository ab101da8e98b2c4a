"""The OTLP/HTTP receiver, exercised over real loopback sockets."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import MappingProxyType

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from builder.verify.receiver import OtlpReceiver, ReceivedSpan, SpanEvent
from builder.verify.trace_tree import format_trace_tree

TRACE_ID = "5b8efff798038103d269b633813fc60c"
ROOT_ID = "eee19b7ec3c1b174"
CHILD_ID = "eee19b7ec3c1b173"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(host="127.0.0.1") as running:
        yield running


def _provider(receiver: OtlpReceiver, **exporter_kwargs: object) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    exporter = OTLPSpanExporter(
        endpoint=receiver.traces_url(),
        headers={"x-honeycomb-team": "test-key"},
        timeout=5,
        **exporter_kwargs,  # type: ignore[arg-type]
    )
    # Simple (synchronous) export keeps the test deterministic and fast.
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _emit_parent_and_child(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("imagewright.tests")
    with (
        tracer.start_as_current_span(
            "GET /orders/{id}",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/orders/{id}", "http.response.status_code": 500},
        ),
        tracer.start_as_current_span(
            "load-order",
            attributes={"order.id": 42, "order.vip": True, "order.tags": ["a", "b"]},
        ) as child,
    ):
        try:
            raise ValueError("order 42 vanished")
        except ValueError as exc:
            child.record_exception(exc)
            child.set_status(Status(StatusCode.ERROR, "lookup failed"))
    provider.shutdown()


def _post(
    url: str, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_sdk_export_is_received_with_linkage_status_events_resource_and_headers(
    receiver: OtlpReceiver,
) -> None:
    _emit_parent_and_child(_provider(receiver))

    spans = receiver.wait_for_spans(lambda s: len(s) >= 2, timeout=3)
    by_name = {s.name: s for s in spans}
    parent, child = by_name["GET /orders/{id}"], by_name["load-order"]

    assert parent.parent_span_id is None
    assert child.parent_span_id == parent.span_id
    assert child.trace_id == parent.trace_id
    assert len(parent.trace_id) == 32 and len(parent.span_id) == 16
    assert parent.kind == "SERVER" and child.kind == "INTERNAL"
    assert parent.attributes["http.response.status_code"] == 500
    assert child.attributes == {"order.id": 42, "order.vip": True, "order.tags": ["a", "b"]}
    assert (child.status_code, child.status_message) == ("ERROR", "lookup failed")
    assert parent.status_code == "UNSET"
    (event,) = child.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "order 42 vanished"
    assert child.resource["service.name"] == "checkout"
    assert child.service_name == "checkout"
    assert child.scope_name == "imagewright.tests"
    assert child.headers["x-honeycomb-team"] == "test-key"
    assert child.headers["content-type"] == "application/x-protobuf"
    assert 0 < child.start_ns <= child.end_ns
    # Simple processor: one export request per ended span.
    assert receiver.requests == 2
    assert receiver.errors == []
    first = receiver.first_span_at()
    assert first is not None and first <= min(s.received_at for s in spans)
    assert first <= time.monotonic()


def test_gzip_compressed_export_is_decoded(receiver: OtlpReceiver) -> None:
    _emit_parent_and_child(_provider(receiver, compression=Compression.Gzip))

    spans = receiver.wait_for_spans(lambda s: len(s) >= 2, timeout=3)

    assert {s.name for s in spans} == {"GET /orders/{id}", "load-order"}
    assert spans[0].headers["content-encoding"] == "gzip"
    assert receiver.errors == []


def test_otlp_json_body_is_decoded_with_hex_ids(receiver: OtlpReceiver) -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": TRACE_ID,
                                "spanId": CHILD_ID,
                                "parentSpanId": ROOT_ID,
                                "name": "db-query",
                                "kind": 3,
                                "startTimeUnixNano": "1000000000",
                                "endTimeUnixNano": "1250000000",
                                "attributes": [
                                    {"key": "rows", "value": {"intValue": "7"}},
                                    {"key": "ratio", "value": {"doubleValue": 0.5}},
                                ],
                                "status": {"code": 2, "message": "timeout"},
                                "someFutureField": True,
                            }
                        ],
                    }
                ],
            }
        ]
    }

    status, content_type, body = _post(
        receiver.traces_url(), json.dumps(document).encode(), "application/json"
    )

    assert status == 200
    assert content_type == "application/json"
    assert json.loads(body) == {}
    (span,) = receiver.spans()
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE_ID, CHILD_ID, ROOT_ID)
    assert (span.kind, span.status_code, span.status_message) == ("CLIENT", "ERROR", "timeout")
    assert span.attributes == {"rows": 7, "ratio": 0.5}
    assert span.resource == {"service.name": "web"}
    assert span.duration_ms == 250.0


def test_garbage_body_is_rejected_and_receiver_keeps_working(receiver: OtlpReceiver) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        _post(receiver.traces_url(), b"\xff\xff\xff\xff garbage", "application/x-protobuf")
    assert caught.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as caught:
        _post(receiver.traces_url(), b"{not json", "application/json")
    assert caught.value.code == 400
    assert len(receiver.errors) == 2
    assert "malformed" in receiver.errors[0]

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes.fromhex(TRACE_ID), bytes.fromhex(ROOT_ID), "ok"
    status, content_type, body = _post(
        receiver.traces_url(), request.SerializeToString(), "application/x-protobuf"
    )

    assert (status, content_type) == (200, "application/x-protobuf")
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    assert [s.name for s in receiver.spans()] == ["ok"]
    assert receiver.requests == 1


def test_metrics_and_logs_are_acknowledged_and_unknown_paths_404(
    receiver: OtlpReceiver,
) -> None:
    base = f"http://127.0.0.1:{receiver.port}"

    assert _post(f"{base}/v1/metrics", b"", "application/x-protobuf")[0] == 200
    assert _post(f"{base}/v1/logs", b"{}", "application/json")[2] == b"{}"
    with pytest.raises(urllib.error.HTTPError) as caught:
        _post(f"{base}/v1/traces/v1/traces", b"", "application/x-protobuf")

    assert caught.value.code == 404
    assert (receiver.metrics_requests, receiver.logs_requests) == (1, 1)
    assert receiver.spans() == [] and receiver.requests == 0
    assert "/v1/traces/v1/traces" in receiver.errors[0]

    receiver.reset()
    assert (receiver.metrics_requests, receiver.errors) == (0, [])


def test_wait_for_spans_times_out_promptly_with_a_helpful_message(
    receiver: OtlpReceiver,
) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"0 span\(s\) in 0 trace export request"):
        receiver.wait_for_spans(lambda s: len(s) > 0, timeout=0.3)

    assert 0.25 <= time.monotonic() - started < 1.5
    assert receiver.first_span_at() is None


def _span(
    name: str, span_id: str, parent: str | None, start_ms: int, **extra: object
) -> ReceivedSpan:
    fields: dict[str, object] = {
        "trace_id": TRACE_ID,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "kind": "INTERNAL",
        "status_code": "UNSET",
        "status_message": "",
        "start_ns": start_ms * 1_000_000,
        "end_ns": (start_ms + 10) * 1_000_000,
        "attributes": {},
        "events": (),
        "resource": {"service.name": "web"},
        "scope_name": "test",
        "received_at": 0.0,
        "headers": MappingProxyType({}),
    }
    fields.update(extra)
    return ReceivedSpan(**fields)  # type: ignore[arg-type]


def test_format_trace_tree_nests_children_under_parents() -> None:
    spans = [
        # Deliberately out of order: children usually end, and arrive, first.
        _span(
            "load-order",
            CHILD_ID,
            ROOT_ID,
            5,
            status_code="ERROR",
            status_message="lookup failed",
            attributes={"order.id": 42, "code.function": "load"},
            events=(SpanEvent("exception", {"exception.type": "KeyError"}),),
        ),
        _span("late-sibling", "00000000000000aa", ROOT_ID, 8),
        _span(
            "GET /orders/{id}",
            ROOT_ID,
            None,
            1,
            kind="SERVER",
            attributes={"http.route": "/orders/{id}", "http.response.status_code": 500},
        ),
    ]

    lines = format_trace_tree(spans).splitlines()

    assert lines[0] == f"trace {TRACE_ID} (web)"
    assert lines[1] == (
        "  GET /orders/{id} [SERVER] UNSET (10.0 ms)"
        " http.route=/orders/{id} http.response.status_code=500"
    )
    assert lines[2] == "    load-order [INTERNAL] ERROR: lookup failed (10.0 ms) order.id=42"
    assert lines[3].startswith("        ! exception KeyError")
    assert lines[4].startswith("    late-sibling [INTERNAL]")
    assert len(lines) == 5


def test_format_trace_tree_shows_orphans_as_roots_and_handles_empty_input() -> None:
    assert format_trace_tree([]) == ""
    text = format_trace_tree([_span("orphan", CHILD_ID, ROOT_ID, 0)])
    assert text.splitlines()[1].startswith("  orphan [INTERNAL]")
    assert f"(parent {ROOT_ID} not received)" in text
