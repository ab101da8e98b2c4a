"""A Flask service written the way many public ones are: it sets up OpenTelemetry itself (its own
TracerProvider, OTLP exporter and Flask instrumentation), has no health route, and its
requirements name no production server."""

import logging

from flask import Flask, jsonify
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT and _HEADERS; the provider's resource reads
# OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer(__name__)

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("ownotel")

ITEMS = [{"id": 1, "name": "kettle"}, {"id": 2, "name": "teapot"}]


@app.get("/api/items")
def items():  # a Flask response
    with tracer.start_as_current_span("items.load") as span:
        span.set_attribute("app.count", len(ITEMS))
        logger.info("listing %d items", len(ITEMS))
        return jsonify(ITEMS)
