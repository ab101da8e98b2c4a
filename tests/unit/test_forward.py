"""The dev loop's forwarding: export requests the receiver accepts go on, unchanged, to another
OTLP/HTTP endpoint (Honeycomb's in real use; a second receiver here), over real loopback sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from builder.verify.forward import Forwarder
from builder.verify.receiver import OtlpReceiver


@pytest.fixture
def receivers() -> Iterator[tuple[OtlpReceiver, OtlpReceiver]]:
    with OtlpReceiver(host="127.0.0.1") as local, OtlpReceiver(host="127.0.0.1") as upstream:
        yield local, upstream


def export(receiver: OtlpReceiver, headers: dict[str, str], names: list[str]) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "web"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=receiver.traces_url(), headers=headers, compression=Compression.Gzip, timeout=5)))
    tracer = provider.get_tracer("tests")
    for name in names:
        with tracer.start_as_current_span(name):
            pass
    provider.shutdown()


def test_requests_with_a_honeycomb_key_are_forwarded_with_their_headers(
        receivers: tuple[OtlpReceiver, OtlpReceiver]) -> None:
    local, upstream = receivers
    with Forwarder(f"http://127.0.0.1:{upstream.port}/") as forwarder:
        local.add_export_listener(forwarder.submit)
        export(local, {"x-honeycomb-team": "key-1", "x-honeycomb-dataset": "web"}, ["a", "b"])
        export(local, {}, ["not-forwarded"])
        spans = upstream.wait_for_spans(lambda s: len(s) >= 2, timeout=10)
    assert sorted(s.name for s in local.spans()) == ["a", "b", "not-forwarded"]
    assert sorted(s.name for s in spans) == ["a", "b"]
    assert spans[0].headers["x-honeycomb-team"] == "key-1"
    assert spans[0].headers["x-honeycomb-dataset"] == "web"
    assert spans[0].headers["content-encoding"] == "gzip", "the body goes on as it came"
    assert spans[0].resource["service.name"] == "web"
    stats = forwarder.stats()
    assert (stats.forwarded, stats.failed, stats.dropped) == (2, 0, 0)
    assert upstream.errors == []


def test_an_unreachable_endpoint_counts_failures_and_never_holds_up_the_receiver(
        receivers: tuple[OtlpReceiver, OtlpReceiver]) -> None:
    local, _ = receivers
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with Forwarder(f"http://127.0.0.1:{closed_port}") as forwarder:
        local.add_export_listener(forwarder.submit)
        export(local, {"x-honeycomb-team": "key-1"}, ["a"])
        assert [s.name for s in local.spans()] == ["a"]
    stats = forwarder.stats()
    assert (stats.forwarded, stats.failed) == (0, 1)
    assert "/v1/traces" in stats.last_error and "refused" in stats.last_error.lower()
