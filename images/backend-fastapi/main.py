"""backend-fastapi: notifications with hard-coded results, so traces are easy to find."""

from fastapi import FastAPI
from opentelemetry import trace

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
        return NOTIFICATIONS


@app.get("/api/fail")
def fail() -> None:
    with tracer.start_as_current_span("fail.on-purpose") as span:
        span.set_attribute("app.reason", "demonstrates an error recorded on its span")
        raise RuntimeError("this endpoint fails on purpose")
