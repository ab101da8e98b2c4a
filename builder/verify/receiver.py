"""A tiny in-process OTLP/HTTP receiver used to prove that traces, metrics and logs arrive.

Running our own receiver (instead of a collector container) means the
verification step has no extra image to pull and can inspect every span,
metric data point and log record, including the headers of the export
request that carried it. Each decoded export is also handed to whoever
`subscribe`d, so a live printer can follow arrivals as they happen.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, Self

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = [
    "Arrival",
    "AttributeValue",
    "ExportRequest",
    "MetricPoint",
    "OtlpReceiver",
    "ReceivedLog",
    "ReceivedMetric",
    "ReceivedSpan",
    "SpanEvent",
    "Telemetry",
]

logger = logging.getLogger(__name__)

AttributeValue = str | int | float | bool | list[Any] | dict[str, Any] | None

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
LOGS_PATH = "/v1/logs"

_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
_JSON_TYPE = "application/json"

# A runaway or hostile client must not be able to exhaust our memory; real
# SDK batches are far below this.
MAX_BODY_BYTES = 64 * 1024 * 1024

# How many receiver errors we keep; a client retrying a broken request in a
# loop should not grow the list forever.
_MAX_ERRORS = 1000


@dataclass(frozen=True)
class SpanEvent:
    name: str
    # Excluded from hashing because dicts are unhashable; equality still
    # compares them.
    attributes: dict[str, AttributeValue] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    status_code: str
    status_message: str
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue] = field(hash=False)
    events: tuple[SpanEvent, ...]
    resource: dict[str, AttributeValue] = field(hash=False)
    scope_name: str
    received_at: float
    # Lower-cased header names; repeated headers are joined with ", " as
    # HTTP allows. Shared, read-only, by all spans of one export request.
    headers: Mapping[str, str] = field(hash=False, repr=False)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1_000_000

    @property
    def service_name(self) -> str | None:
        return _service_name(self.resource)


@dataclass(frozen=True)
class MetricPoint:
    """One data point. Sums and gauges have `value`; histograms and summaries `count` and `sum`."""

    attributes: dict[str, AttributeValue] = field(hash=False)
    start_ns: int
    time_ns: int
    value: int | float | None = None
    count: int | None = None
    sum: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class ReceivedMetric:
    name: str
    unit: str
    description: str
    # gauge | sum | histogram | exponential_histogram | summary ("" when the metric has no data)
    kind: str
    # CUMULATIVE | DELTA for sums and histograms, "" otherwise
    temporality: str
    monotonic: bool | None  # sums only
    points: tuple[MetricPoint, ...]
    resource: dict[str, AttributeValue] = field(hash=False)
    scope_name: str
    received_at: float
    # Of the export request, as for spans (Honeycomb's metrics dataset travels in a header).
    headers: Mapping[str, str] = field(hash=False, repr=False)

    @property
    def service_name(self) -> str | None:
        return _service_name(self.resource)


@dataclass(frozen=True)
class ReceivedLog:
    time_ns: int
    observed_ns: int
    severity_number: int  # 1-24 as OTLP defines them: 9 INFO, 13 WARN, 17 ERROR; 0 unset
    severity_text: str
    body: AttributeValue
    attributes: dict[str, AttributeValue] = field(hash=False)
    # The span that was current when the record was made; None outside any span.
    trace_id: str | None
    span_id: str | None
    resource: dict[str, AttributeValue] = field(hash=False)
    scope_name: str
    received_at: float
    headers: Mapping[str, str] = field(hash=False, repr=False)

    @property
    def service_name(self) -> str | None:
        return _service_name(self.resource)

    @property
    def severity(self) -> str:
        """The text the SDK sent, else the name of the severity number (INFO, WARN2, …)."""
        if self.severity_text:
            return self.severity_text
        return _enum_name(SeverityNumber, self.severity_number, "SEVERITY_NUMBER_")


def _service_name(resource: Mapping[str, AttributeValue]) -> str | None:
    value = resource.get("service.name")
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Telemetry:
    """Everything received so far, in arrival order: one consistent snapshot of the three pillars."""

    spans: tuple[ReceivedSpan, ...] = ()
    metrics: tuple[ReceivedMetric, ...] = ()
    logs: tuple[ReceivedLog, ...] = ()


# What an OTLP export request carries, as the receiver names it.
SIGNALS = ("traces", "metrics", "logs")


@dataclass(frozen=True)
class Arrival:
    """One decoded export request, as handed to subscribers."""

    signal: str  # traces | metrics | logs
    items: tuple[ReceivedSpan, ...] | tuple[ReceivedMetric, ...] | tuple[ReceivedLog, ...]
    received_at: float


@dataclass(frozen=True)
class ExportRequest:
    """One export request the receiver accepted, as it came: for listeners that pass it on."""

    path: str  # /v1/traces, /v1/metrics or /v1/logs
    headers: Mapping[str, str]  # lower-cased names, as ReceivedSpan.headers
    body: bytes  # still encoded as its Content-Encoding says


class OtlpReceiver:
    """OTLP/HTTP receiver running in a daemon thread.

    Use as a context manager::

        with OtlpReceiver() as receiver:
            ...  # point an exporter at receiver.port
            spans = receiver.wait_for_spans(lambda s: len(s) >= 2, timeout=30)
    """

    # Set by add_export_listener (the dev loop forwards to Honeycomb through one); immutable, so
    # handler threads can read it without copying.
    _export_listeners: tuple[Callable[[ExportRequest], None], ...] = ()

    def __init__(self, host: str = "0.0.0.0", port: int = 0) -> None:
        # 0.0.0.0 by default because containers on the docker bridge reach us
        # through the bridge gateway address, not through loopback.
        self.host = host
        self._requested_port = port
        self._cond = threading.Condition()
        self._spans: list[ReceivedSpan] = []
        self._metrics: list[ReceivedMetric] = []
        self._logs: list[ReceivedLog] = []
        self._errors: list[str] = []
        # Export requests decoded successfully, per signal (traces | metrics | logs).
        self._request_counts = dict.fromkeys(SIGNALS, 0)
        self._first_span_at: float | None = None
        self._subscribers: list[Callable[[Arrival], None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("OtlpReceiver is already running")
        server = _Server((self.host, self._requested_port), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # A short poll interval keeps stop() fast; the idle cost is
            # negligible for a short-lived verification run.
            kwargs={"poll_interval": 0.05},
            name=f"otlp-receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("OtlpReceiver is not running")
        return int(self._server.server_address[1])

    def traces_url(self, host: str = "127.0.0.1") -> str:
        """Endpoint to give an exporter that reaches us via `host`."""
        return f"http://{host}:{self.port}{TRACES_PATH}"

    def metrics_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{METRICS_PATH}"

    def logs_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{LOGS_PATH}"

    def subscribe(self, callback: Callable[[Arrival], None]) -> Callable[[], None]:
        """Call `callback` with every export decoded from now on; returns the unsubscribe function.

        Called on the receiver's handler thread, after the items are stored and before the client
        gets its answer, so it should be quick; an exception it raises is logged and swallowed.
        """
        with self._cond:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # -- accessors -------------------------------------------------------------

    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            return list(self._spans)

    def metrics(self) -> list[ReceivedMetric]:
        with self._cond:
            return list(self._metrics)

    def logs(self) -> list[ReceivedLog]:
        with self._cond:
            return list(self._logs)

    def telemetry(self) -> Telemetry:
        with self._cond:
            return self._snapshot()

    def _snapshot(self) -> Telemetry:
        return Telemetry(tuple(self._spans), tuple(self._metrics), tuple(self._logs))

    def wait_for(
        self,
        predicate: Callable[[Telemetry], bool],
        timeout: float = 30.0,
    ) -> Telemetry:
        """Block until `predicate(telemetry)` holds; return the snapshot it held for.

        Raises TimeoutError, describing what did arrive, if it never holds.
        """
        snapshot = Telemetry()

        def check() -> bool:
            nonlocal snapshot
            snapshot = self._snapshot()
            return predicate(snapshot)

        with self._cond:
            if self._cond.wait_for(check, timeout=timeout):
                return snapshot
            raise TimeoutError(self._timeout_message(timeout, "telemetry"))

    def wait_for_spans(
        self,
        predicate: Callable[[list[ReceivedSpan]], bool],
        timeout: float = 30.0,
    ) -> list[ReceivedSpan]:
        """Block until `predicate(spans)` holds; return the spans seen then.

        Raises TimeoutError, describing what did arrive, if it never holds.
        """
        snapshot: list[ReceivedSpan] = []

        def check() -> bool:
            nonlocal snapshot
            snapshot = list(self._spans)
            return predicate(snapshot)

        with self._cond:
            if self._cond.wait_for(check, timeout=timeout):
                return snapshot
            raise TimeoutError(self._timeout_message(timeout, "spans"))

    def add_export_listener(self, listener: Callable[[ExportRequest], None]) -> None:
        """Call `listener` with every export request accepted from now on, just before it is
        answered, on the handler's thread (keep it quick: queue the work). Its errors are logged,
        not raised."""
        with self._cond:
            self._export_listeners = (*self._export_listeners, listener)

    def _exported(self, request: ExportRequest) -> None:
        with self._cond:
            listeners = self._export_listeners
        for listener in listeners:
            try:
                listener(request)
            except Exception:
                logger.warning("OTLP receiver: export listener failed", exc_info=True)

    def first_span_at(self) -> float | None:
        """time.monotonic() of the first span's arrival, or None."""
        with self._cond:
            return self._first_span_at

    @property
    def requests(self) -> int:
        """Number of trace export requests that were decoded successfully."""
        return self._requests_of("traces")

    @property
    def metrics_requests(self) -> int:
        """Number of metrics export requests that were decoded successfully."""
        return self._requests_of("metrics")

    @property
    def logs_requests(self) -> int:
        """Number of logs export requests that were decoded successfully."""
        return self._requests_of("logs")

    def _requests_of(self, signal: str) -> int:
        with self._cond:
            return self._request_counts[signal]

    @property
    def errors(self) -> list[str]:
        with self._cond:
            return list(self._errors)

    def reset(self) -> None:
        with self._cond:
            self._spans.clear()
            self._metrics.clear()
            self._logs.clear()
            self._errors.clear()
            self._request_counts = dict.fromkeys(SIGNALS, 0)
            self._first_span_at = None

    # -- called from handler threads --------------------------------------------

    def _record_spans(self, spans: list[ReceivedSpan], received_at: float) -> None:
        self._record("traces", self._spans, spans, received_at)

    def _record_metrics(self, metrics: list[ReceivedMetric], received_at: float) -> None:
        self._record("metrics", self._metrics, metrics, received_at)

    def _record_logs(self, logs: list[ReceivedLog], received_at: float) -> None:
        self._record("logs", self._logs, logs, received_at)

    def _record(self, signal: str, store: list[Any], items: list[Any], received_at: float) -> None:
        with self._cond:
            self._request_counts[signal] += 1
            if signal == "traces" and items and self._first_span_at is None:
                self._first_span_at = items[0].received_at
            store.extend(items)
            self._cond.notify_all()
        self._notify(Arrival(signal, tuple(items), received_at))

    def _notify(self, arrival: Arrival) -> None:
        with self._cond:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(arrival)
            except Exception:  # a subscriber's bug must not cost the exporter its answer
                logger.warning("OTLP receiver: subscriber %r failed", callback, exc_info=True)

    def _record_error(self, message: str) -> None:
        logger.warning("OTLP receiver: %s", message)
        with self._cond:
            if len(self._errors) < _MAX_ERRORS:
                self._errors.append(message)
            # Waiters' predicates may look at errors via the receiver, so
            # give them a chance to re-evaluate.
            self._cond.notify_all()

    def _timeout_message(self, timeout: float, awaited: str) -> str:
        names = sorted({s.name for s in self._spans})
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        services = sorted({s.service_name or "?" for s in self._spans})
        parts = [
            f"timed out after {timeout:g}s waiting for {awaited}:",
            f"received {len(self._spans)} span(s) in {self._request_counts['traces']}"
            f" trace export request(s)",
        ]
        if names:
            parts.append(f"(names: {shown}; services: {', '.join(services)})")
        parts.append(
            f"plus {len(self._metrics)} metric(s) in {self._request_counts['metrics']} metrics and"
            f" {len(self._logs)} log record(s) in {self._request_counts['logs']} logs export"
            " request(s)"
        )
        if self._errors:
            parts.append(f"and {len(self._errors)} receiver error(s), last: {self._errors[-1]}")
        return " ".join(parts)


# -- HTTP plumbing -------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: OtlpReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; we are a library.
        logger.debug("OTLP receiver connection error from %s", client_address, exc_info=True)


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 for keep-alive and "Expect: 100-continue", which some SDKs send.
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections must not pin handler threads forever.
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("OTLP receiver: " + format, *args)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            body = self._read_body()
        except _BadRequest as exc:
            # The body is in an unknown state, so the connection can't be
            # reused for another request.
            self.close_connection = True
            receiver._record_error(f"POST {self.path}: {exc}")
            self._send(exc.status, str(exc).encode(), "text/plain; charset=utf-8")
            return
        try:
            self._dispatch(path, body)
        except _BadRequest as exc:
            receiver._record_error(f"POST {self.path}: {exc}")
            self._send(exc.status, str(exc).encode(), "text/plain; charset=utf-8")
        except Exception as exc:  # never let a request kill the handler thread
            logger.debug("OTLP receiver internal error", exc_info=True)
            receiver._record_error(f"POST {self.path}: internal error: {exc!r}")
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error", "text/plain; charset=utf-8"
            )

    def do_GET(self) -> None:
        self._not_post()

    def do_PUT(self) -> None:
        self._not_post()

    def do_DELETE(self) -> None:
        self._not_post()

    def _not_post(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        self.close_connection = True
        if path in (TRACES_PATH, METRICS_PATH, LOGS_PATH):
            self._send(
                HTTPStatus.METHOD_NOT_ALLOWED,
                b"use POST",
                "text/plain; charset=utf-8",
                {"Allow": "POST"},
            )
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8")

    def _dispatch(self, path: str, body: bytes) -> None:
        receiver = self.server.receiver
        if path not in (TRACES_PATH, METRICS_PATH, LOGS_PATH):
            # Recorded because a wrong path (e.g. "/v1/traces/v1/traces" from a
            # misused OTEL_EXPORTER_OTLP_ENDPOINT) is a classic reason for
            # traces never arriving.
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"unknown path {path!r}")
        media_type = self._media_type()
        if media_type not in _PROTOBUF_TYPES and media_type != _JSON_TYPE:
            raise _BadRequest(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"unsupported Content-Type {self.headers.get('Content-Type')!r}",
            )
        is_json = media_type == _JSON_TYPE
        received_at = time.monotonic()
        payload = self._decode_content(body)
        request: Message = _REQUEST_TYPES[path]()
        try:
            if is_json:
                _parse_otlp_json(payload, request)
            else:
                request.ParseFromString(payload)
        except Exception as exc:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST,
                f"malformed {media_type} {type(request).__name__} ({len(body)} bytes): {exc}",
            ) from exc
        response: Message
        if isinstance(request, ExportTraceServiceRequest):
            receiver._record_spans(
                _convert_request(request, received_at, self._header_map()), received_at
            )
            response = ExportTraceServiceResponse()
        elif isinstance(request, ExportMetricsServiceRequest):
            receiver._record_metrics(
                _convert_metrics(request, received_at, self._header_map()), received_at
            )
            response = ExportMetricsServiceResponse()
        else:
            assert isinstance(request, ExportLogsServiceRequest)
            receiver._record_logs(
                _convert_logs(request, received_at, self._header_map()), received_at
            )
            response = ExportLogsServiceResponse()
        # Before the answer: an exporter that got its 200 may count on the request having been passed on.
        receiver._exported(ExportRequest(path, self._header_map(), body))
        if is_json:
            self._send(HTTPStatus.OK, json_format.MessageToJson(response).encode(), _JSON_TYPE)
        else:
            self._send(HTTPStatus.OK, response.SerializeToString(), "application/x-protobuf")

    def _media_type(self) -> str:
        raw = self.headers.get("Content-Type")
        if not raw:
            # OTLP requires Content-Type, but protobuf is the default encoding
            # and being lenient here helps debug hand-rolled clients.
            return "application/x-protobuf"
        return raw.split(";", 1)[0].strip().lower()

    def _header_map(self) -> Mapping[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return MappingProxyType(headers)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
        except ValueError as exc:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"bad Content-Length {raw_length!r}") from exc
        if length < 0:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"bad Content-Length {raw_length!r}")
        if length > MAX_BODY_BYTES:
            raise _BadRequest(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes exceeds {MAX_BODY_BYTES}",
            )
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST, f"truncated body: {len(body)} of {length} bytes"
            )
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _BadRequest(HTTPStatus.BAD_REQUEST, f"bad chunk size line {line!r}") from exc
            if size == 0:
                # Skip optional trailers up to the terminating blank line.
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"chunked body exceeds {MAX_BODY_BYTES} bytes",
                )
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise _BadRequest(HTTPStatus.BAD_REQUEST, "truncated chunked body")
            chunks.append(chunk)
            self.rfile.readline(8)  # CRLF after each chunk

    def _decode_content(self, body: bytes) -> bytes:
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        try:
            if encoding in ("", "identity"):
                return body
            if encoding == "gzip":
                return _bounded_decompress(body, zlib.MAX_WBITS | 16)
            if encoding == "deflate":
                # The Python SDK's Compression.Deflate sends zlib-wrapped data;
                # adding 32 also auto-detects gzip headers.
                return _bounded_decompress(body, zlib.MAX_WBITS | 32)
        except (zlib.error, gzip.BadGzipFile, EOFError) as exc:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST, f"cannot {encoding}-decode body: {exc}"
            ) from exc
        raise _BadRequest(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported Content-Encoding {encoding!r}"
        )

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _bounded_decompress(data: bytes, wbits: int) -> bytes:
    # Guards against decompression bombs the same way MAX_BODY_BYTES guards
    # the raw body.
    decompressor = zlib.decompressobj(wbits)
    out = decompressor.decompress(data, MAX_BODY_BYTES)
    if decompressor.unconsumed_tail:
        raise zlib.error(f"decompressed body exceeds {MAX_BODY_BYTES} bytes")
    if not decompressor.eof:
        raise zlib.error("compressed body is truncated")
    return out


# -- OTLP decoding ---------------------------------------------------------------

# OTLP/JSON encodes these ids as hex, while protobuf's canonical JSON mapping
# (what json_format expects) uses base64 for bytes fields.
_HEX_ID_FIELDS = {
    "traceId": 16,
    "spanId": 8,
    "parentSpanId": 8,
    "trace_id": 16,
    "span_id": 8,
    "parent_span_id": 8,
}


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            size = _HEX_ID_FIELDS.get(key)
            if size is not None and isinstance(value, str) and len(value) == 2 * size:
                # If it is not hex, it is presumably base64 already.
                with contextlib.suppress(ValueError):
                    value = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


_REQUEST_TYPES: dict[str, Callable[[], Message]] = {
    TRACES_PATH: ExportTraceServiceRequest,
    METRICS_PATH: ExportMetricsServiceRequest,
    LOGS_PATH: ExportLogsServiceRequest,
}


def _parse_otlp_json(payload: bytes, request: Message) -> None:
    document = json.loads(payload.decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("top-level JSON value is not an object")
    # Unknown fields are ignored as the OTLP spec asks of receivers, so newer
    # SDKs don't get rejected by our older proto definitions.
    json_format.ParseDict(_hex_ids_to_base64(document), request, ignore_unknown_fields=True)


def _any_value(value: AnyValue) -> AttributeValue:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    result: AttributeValue = getattr(value, which)
    return result


def _attributes(pairs: Sequence[KeyValue]) -> dict[str, AttributeValue]:
    return {kv.key: _any_value(kv.value) for kv in pairs}


def _enum_name(enum: Any, number: int, prefix: str) -> str:
    try:
        name: str = enum.Name(number)
    except ValueError:
        return str(number)
    return name.removeprefix(prefix)


def _convert_request(
    request: ExportTraceServiceRequest,
    received_at: float,
    headers: Mapping[str, str],
) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        # All-zero parent ids appear from some SDKs for roots.
                        parent_span_id=(
                            span.parent_span_id.hex() if span.parent_span_id.strip(b"\0") else None
                        ),
                        name=span.name,
                        kind=_enum_name(Span.SpanKind, span.kind, "SPAN_KIND_"),
                        status_code=_enum_name(Status.StatusCode, span.status.code, "STATUS_CODE_"),
                        status_message=span.status.message,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                        events=tuple(
                            SpanEvent(e.name, _attributes(e.attributes)) for e in span.events
                        ),
                        # Each span gets its own copy so callers mutating one
                        # span's resource can't affect the others.
                        resource=dict(resource),
                        scope_name=scope_name,
                        received_at=received_at,
                        headers=headers,
                    )
                )
    return spans


def _optional_id(raw: bytes) -> str | None:
    # Absent ids are empty bytes; some SDKs send all zeros instead.
    return raw.hex() if raw.strip(b"\0") else None


def _metric_points(metric: Metric) -> tuple[str, str, bool | None, tuple[MetricPoint, ...]]:
    """(kind, temporality, monotonic, points) of one metric, whichever its data type."""
    kind = metric.WhichOneof("data") or ""
    if kind in ("gauge", "sum"):
        data = metric.sum if kind == "sum" else metric.gauge
        points = tuple(
            MetricPoint(
                _attributes(point.attributes),
                point.start_time_unix_nano,
                point.time_unix_nano,
                value=_number(point),
            )
            for point in data.data_points
        )
        if kind == "gauge":
            return kind, "", None, points
        return (kind, _temporality(metric.sum.aggregation_temporality), metric.sum.is_monotonic,
                points)
    if kind in ("histogram", "exponential_histogram"):
        histogram = getattr(metric, kind)
        points = tuple(
            MetricPoint(
                _attributes(point.attributes),
                point.start_time_unix_nano,
                point.time_unix_nano,
                count=point.count,
                sum=point.sum if point.HasField("sum") else None,
                min=point.min if point.HasField("min") else None,
                max=point.max if point.HasField("max") else None,
            )
            for point in histogram.data_points
        )
        return kind, _temporality(histogram.aggregation_temporality), None, points
    if kind == "summary":
        points = tuple(
            MetricPoint(_attributes(point.attributes), point.start_time_unix_nano,
                        point.time_unix_nano, count=point.count, sum=point.sum)
            for point in metric.summary.data_points
        )
        return kind, "", None, points
    return kind, "", None, ()


def _number(point: Any) -> int | float | None:
    which = point.WhichOneof("value")  # as_int | as_double
    return getattr(point, which) if which else None


def _temporality(number: int) -> str:
    return _enum_name(AggregationTemporality, number, "AGGREGATION_TEMPORALITY_")


def _convert_metrics(
    request: ExportMetricsServiceRequest, received_at: float, headers: Mapping[str, str]
) -> list[ReceivedMetric]:
    metrics: list[ReceivedMetric] = []
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind, temporality, monotonic, points = _metric_points(metric)
                metrics.append(
                    ReceivedMetric(
                        name=metric.name,
                        unit=metric.unit,
                        description=metric.description,
                        kind=kind,
                        temporality=temporality,
                        monotonic=monotonic,
                        points=points,
                        resource=dict(resource),
                        scope_name=scope_metrics.scope.name,
                        received_at=received_at,
                        headers=headers,
                    )
                )
    return metrics


def _convert_logs(
    request: ExportLogsServiceRequest, received_at: float, headers: Mapping[str, str]
) -> list[ReceivedLog]:
    logs: list[ReceivedLog] = []
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                logs.append(
                    ReceivedLog(
                        time_ns=record.time_unix_nano,
                        observed_ns=record.observed_time_unix_nano,
                        severity_number=record.severity_number,
                        severity_text=record.severity_text,
                        body=_any_value(record.body),
                        attributes=_attributes(record.attributes),
                        trace_id=_optional_id(record.trace_id),
                        span_id=_optional_id(record.span_id),
                        resource=dict(resource),
                        scope_name=scope_logs.scope.name,
                        received_at=received_at,
                        headers=headers,
                    )
                )
    return logs
