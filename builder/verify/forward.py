"""Pass every export request the receiver accepts on to another OTLP/HTTP endpoint (Honeycomb),
unchanged, as a collector's OTLP exporter would: the dev loop shows telemetry locally and, with a
Honeycomb key, the same data also reaches Honeycomb.

The containers themselves compute the Honeycomb headers (their entrypoint turns
`HONEYCOMB_API_KEY` into `x-honeycomb-team`, and whatever dataset headers a signal needs), so each
request is forwarded with the headers it came with: Honeycomb sees what the app would have sent it
directly. A request without `x-honeycomb-team` is not forwarded (there would be nothing to
authenticate it). Sending happens on a thread of its own, from a bounded queue: a slow or
unreachable endpoint never holds up the receiver.
"""

from __future__ import annotations

import logging
import queue
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from builder.verify.receiver import ExportRequest

logger = logging.getLogger(__name__)

KEY_HEADER = "x-honeycomb-team"
# What a forwarded request carries over: the encoding of its body, and Honeycomb's own headers.
_KEPT_HEADERS = ("content-type", "content-encoding")
_KEPT_PREFIX = "x-honeycomb-"
QUEUE_SIZE = 1000
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ForwardStats:
    endpoint: str
    forwarded: int
    failed: int
    dropped: int  # the queue was full: the endpoint could not keep up
    last_error: str


class Forwarder:
    """Use as a context manager; `receiver.add_export_listener(forwarder.submit)`."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._queue: queue.Queue[ExportRequest | None] = queue.Queue(QUEUE_SIZE)
        self._lock = threading.Lock()
        self._forwarded = self._failed = self._dropped = 0
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name="otlp-forwarder", daemon=True)
        # Straight to the endpoint, or through the proxy the environment names (urllib's default).
        self._opener = urllib.request.build_opener()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def submit(self, request: ExportRequest) -> None:
        if KEY_HEADER not in request.headers:
            return
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def close(self, timeout: float = 15.0) -> None:
        """Send what is queued (for up to `timeout`), then stop."""
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def stats(self) -> ForwardStats:
        with self._lock:
            return ForwardStats(self.endpoint, self._forwarded, self._failed, self._dropped,
                                self._last_error)

    def _run(self) -> None:
        while (request := self._queue.get()) is not None:
            error = self._send(request)
            with self._lock:
                if error:
                    self._failed += 1
                    self._last_error = error
                else:
                    self._forwarded += 1

    def _send(self, request: ExportRequest) -> str:
        headers = {name: value for name, value in request.headers.items()
                   if name in _KEPT_HEADERS or name.startswith(_KEPT_PREFIX)}
        outgoing = urllib.request.Request(self.endpoint + request.path, data=request.body,
                                          headers=headers, method="POST")
        try:
            with self._opener.open(outgoing, timeout=TIMEOUT_S) as response:
                response.read()
        except urllib.error.HTTPError as error:
            detail = error.read(300).decode("utf-8", "replace").strip()
            return f"{request.path}: HTTP {error.code} {detail}".strip()
        except (OSError, urllib.error.URLError) as error:
            return f"{request.path}: {getattr(error, 'reason', error)}"
        return ""
