"""Who sets up OpenTelemetry in a running app, judged from what it does (pure: logs and spans in).

Many apps build their own TracerProvider and exporter and instrument their framework by hand.
Under the image's wrapper (`otel.mode: auto`) the wrapper's provider is installed first, so the
SDK refuses the app's (`Overriding of current TracerProvider is not allowed`) and instrumentors
refuse to instrument twice: the app's own set-up is dead code. With `otel.mode: app` there is no
wrapper and the app's set-up is what runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from builder.naming import VARIANT_LABEL
from builder.verify.receiver import ReceivedSpan

# What the OpenTelemetry API and instrumentations log when an app sets up what is set up already.
_PROVIDER_REFUSED = re.compile(r"Overriding of current (\w+Provider) is not allowed")
_INSTRUMENTED_TWICE = re.compile(r"Attempting to instrument (?:(\w+) app )?while already "
                                 r"instrumented")


@dataclass(frozen=True)
class OtelSetup:
    """`mode` is the spec's `otel.mode`; `evidence`, what the running app showed of a set-up of its
    own (empty: none seen)."""

    mode: str
    evidence: tuple[str, ...]
    spans: int  # how many spans the judgement saw

    @property
    def app_sets_up_otel(self) -> bool:
        return bool(self.evidence) or (self.mode == "app" and self.spans > 0)

    @property
    def owner(self) -> str:
        return "wrapper" if self.mode == "auto" else "app"

    @property
    def dead_code(self) -> bool:
        """The app's own set-up never runs: the wrapper owns the provider."""
        return self.mode == "auto" and bool(self.evidence)

    def summary(self) -> str:
        if self.mode == "auto":
            return ("set up by the image's wrapper (otel.mode: auto: opentelemetry-instrument "
                    "owns the TracerProvider)")
        return "set up by the app itself (otel.mode: app: no wrapper)"

    def advice(self, spec_file: str) -> str:
        """What to do about it, or "" when nothing needs doing."""
        if self.dead_code:
            return ("the app sets up OpenTelemetry itself, and under otel.mode: auto its own "
                    "set-up is dead code (the wrapper's provider and instrumentation win): remove "
                    "it, or set `otel: {mode: app}` in " + spec_file + " so the app owns it")
        if self.mode == "app" and self.spans == 0:
            return ("with otel.mode: app the app must set up OpenTelemetry itself (a "
                    "TracerProvider with an OTLP exporter that reads OTEL_EXPORTER_OTLP_*): none "
                    "of its spans arrived")
        return ""


def judge_otel_setup(mode: str, logs: str, spans: Sequence[ReceivedSpan]) -> OtelSetup:
    """The app's own OpenTelemetry set-up as its log and its spans show it."""
    evidence: list[str] = []
    for provider in dict.fromkeys(match.group(1) for match in _PROVIDER_REFUSED.finditer(logs)):
        evidence.append(f"the app installs a {provider} of its own (the SDK refused it: "
                        f"\"Overriding of current {provider} is not allowed\")")
    for match in _INSTRUMENTED_TWICE.finditer(logs):
        what = f"its {match.group(1)} app" if match.group(1) else "a library"
        evidence.append(f"the app instruments {what} itself, a second time "
                        f"(\"{match.group(0)}\")")
    foreign = [span for span in spans if VARIANT_LABEL not in span.resource]
    if foreign:
        scopes = sorted({span.scope_name for span in foreign if span.scope_name})
        evidence.append(f"{len(foreign)} of {len(spans)} spans lack the image's resource attributes "
                        f"({VARIANT_LABEL} from OTEL_RESOURCE_ATTRIBUTES): they come from a "
                        "TracerProvider the app built with a Resource of its own"
                        + (f" (scopes: {', '.join(scopes[:4])})" if scopes else ""))
    return OtelSetup(mode, tuple(dict.fromkeys(evidence)), len(spans))
