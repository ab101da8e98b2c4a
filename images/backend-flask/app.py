"""backend-flask: home activities with hard-coded results, so traces are easy to find."""

import logging

from flask import Flask, jsonify
from opentelemetry import trace

from services.home_activities import HomeActivities
from services.notifications import Notifications

# Records go to stderr and, through OpenTelemetry's logging handler, to the OTLP endpoint with the
# trace and span ids of the request that logged them.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("backend-flask")
app = Flask(__name__)
tracer = trace.get_tracer("backend-flask")


@app.get("/api/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/activities/home")
def home_activities():  # noqa: ANN201 - Flask response
    # Asks backend-fastapi for notifications: the call that joins both services in one trace.
    return jsonify(activities=HomeActivities.run(), notifications=Notifications.fetch())


@app.get("/api/fail")
def fail():  # noqa: ANN201 - never returns
    # The manual span records the exception and ERROR status as the error leaves it.
    with tracer.start_as_current_span("fail.on-purpose") as span:
        span.set_attribute("app.reason", "demonstrates an error recorded on its span")
        logger.warning("failing on purpose")
        raise RuntimeError("this endpoint fails on purpose")
