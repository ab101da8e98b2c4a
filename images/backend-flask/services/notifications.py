"""The call to the notifications service (backend-fastapi): one HTTP request whose trace context
the requests instrumentation propagates, so both services' spans join one trace.

It fails soft: when the other service is not running (verify of this service alone, or a dev
session of one service), home still answers, and the response and the span say the call failed.
"""

import os

import requests
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

tracer = trace.get_tracer("backend-flask.notifications")

# The notifications service's Compose service name, which is also its alias on `verify`'s network.
NOTIFICATIONS_URL = os.environ.get("NOTIFICATIONS_URL", "http://backend-fastapi:8000/api/notifications")
TIMEOUT_S = 2.0


class Notifications:
    @staticmethod
    def fetch() -> dict[str, object]:
        with tracer.start_as_current_span("notifications.fetch") as span:
            span.set_attribute("app.notifications.url", NOTIFICATIONS_URL)
            try:
                response = requests.get(NOTIFICATIONS_URL, timeout=TIMEOUT_S)
                response.raise_for_status()
                items = response.json()
            except (requests.RequestException, ValueError) as error:
                # Degraded, not failed: the page still renders, without notifications.
                reason = f"{type(error).__name__}: {error}"
                span.set_attribute("app.notifications.available", False)
                span.set_status(Status(StatusCode.ERROR, f"notifications unavailable ({reason})"))
                return {"items": [], "error": f"notifications unavailable: {reason}"}
            span.set_attribute("app.notifications.available", True)
            span.set_attribute("app.result_length", len(items))
            return {"items": items, "error": None}
