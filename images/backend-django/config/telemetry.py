"""The app's own OpenTelemetry setup, as many real services have one.

Guarded: when something has set up tracing already — imagewright's image runs the app under
`opentelemetry-instrument`, whose provider is in place before this module is imported — this does
nothing, so the two never fight (the SDK would refuse the second provider with a warning and this
setup would be dead code). Run without that wrapper (`python manage.py runserver` on a laptop, or
an image whose wrapper is off), it sets up the provider, the OTLP/HTTP exporter and the Django
instrumentation itself, from the same OTEL_* environment variables.
"""

from __future__ import annotations

import logging
import os
import sys

from opentelemetry import trace

log = logging.getLogger(__name__)


def configure_tracing() -> bool:
    """Set up tracing unless it is disabled or already set up; True when this call did it."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    # `runserver` reloads by default: this process only watches the files and restarts the server
    # in a child (RUN_MAIN=true), which serves, and sets tracing up.
    if ("runserver" in sys.argv and "--noreload" not in sys.argv
            and os.environ.get("RUN_MAIN") != "true"):
        return False
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        log.info("tracing already set up (opentelemetry-instrument): the app's own setup is skipped")
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the exporter reads
    # OTEL_EXPORTER_OTLP_ENDPOINT and _HEADERS (the image turns HONEYCOMB_API_KEY into the header).
    provider = TracerProvider(resource=Resource.create({"service.name": "backend-django"}
                                                       if "OTEL_SERVICE_NAME" not in os.environ
                                                       else {}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    log.info("tracing set up by the app (no opentelemetry-instrument wrapper)")
    return True
