"""Spans as they arrive → whole traces, each handed out once it is complete enough to print.

A request's spans reach the receiver in several export batches, from every service it passed
through. A trace is ready when its root span (no parent) has arrived and nothing new has come for
`quiet_s`, or, root or not, when nothing has come for `give_up_s` (a caller outside the services,
a root lost on the way). Spans of a trace already handed out that arrive later come out again,
as a trace of their own (the tree marks their parents as not received). Pure: the caller says what
time it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from builder.verify.receiver import ReceivedSpan

QUIET_S = 1.0
GIVE_UP_S = 5.0


@dataclass
class _Pending:
    spans: list[ReceivedSpan] = field(default_factory=list)
    last_arrival: float = 0.0
    has_root: bool = False


class LiveTraces:
    def __init__(self, quiet_s: float = QUIET_S, give_up_s: float = GIVE_UP_S) -> None:
        self.quiet_s = quiet_s
        self.give_up_s = give_up_s
        self._pending: dict[str, _Pending] = {}

    def add(self, spans: Iterable[ReceivedSpan], now: float) -> None:
        for span in spans:
            pending = self._pending.setdefault(span.trace_id, _Pending())
            pending.spans.append(span)
            pending.last_arrival = now
            pending.has_root = pending.has_root or span.parent_span_id is None

    def ready(self, now: float) -> list[list[ReceivedSpan]]:
        """Traces to print now, oldest first; each is handed out once."""
        done = [trace_id for trace_id, pending in self._pending.items()
                if now - pending.last_arrival >= (self.quiet_s if pending.has_root
                                                  else self.give_up_s)]
        traces = [self._pending.pop(trace_id).spans for trace_id in done]
        return sorted(traces, key=lambda spans: min(span.start_ns for span in spans))

    def flush(self) -> list[list[ReceivedSpan]]:
        """Everything still pending (the loop is ending)."""
        traces = [pending.spans for pending in self._pending.values()]
        self._pending.clear()
        return sorted(traces, key=lambda spans: min(span.start_ns for span in spans))
