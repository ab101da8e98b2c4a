"""backend-fastapi: notifications with hard-coded results, so traces are easy to find."""

import logging

from fastapi import FastAPI
from opentelemetry import trace

# Records go to stderr and, through OpenTelemetry's logging handler, to the OTLP endpoint with the
# trace and span ids of the request that logged them.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("backend-fastapi")
app = FastAPI(title="backend-fastapi")
tracer = trace.get_tracer("backend-fastapi")

NOTIFICATIONS = [
    {"uuid": "f3a1c8e2-5b7d-4e2a-9c1f-2d8e6b4a7c90", "handle": "Data", "message": "I am fully functional."},
    {"uuid": "0b9d2f64-3a1e-4c8b-a7e5-6f2c1d9e8b47", "handle": "Geordi", "message": "Warp core is stable."},
]


@app.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/notifications")
def notifications() -> list[dict[str, str]]:
    with tracer.start_as_current_span("notifications.mock-data") as span:
        span.set_attribute("app.result_length", len(NOTIFICATIONS))
        logger.info("notifications: %d results", len(NOTIFICATIONS))
        return NOTIFICATIONS


@app.get("/api/fail")
def fail() -> None:
    with tracer.start_as_current_span("fail.on-purpose") as span:
        span.set_attribute("app.reason", "demonstrates an error recorded on its span")
        logger.warning("failing on purpose")
        raise RuntimeError("this endpoint fails on purpose")
