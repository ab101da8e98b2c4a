"""backend-django: activities with hard-coded results, so traces are easy to find."""

import logging

from django.http import HttpRequest, JsonResponse
from opentelemetry import trace

tracer = trace.get_tracer("backend-django")
logger = logging.getLogger("backend-django")

ACTIVITIES = [
    {"uuid": "68f126b0-1ceb-4a33-88be-d90fa7109eee", "handle": "Andrew Brown",
     "message": "Cloud is fun!", "likes_count": 5},
    {"uuid": "66e12864-8c26-4c3a-9658-95a10f8fea67", "handle": "Worf",
     "message": "This post has no honor!", "likes_count": 0},
]


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def home_activities(request: HttpRequest) -> JsonResponse:
    with tracer.start_as_current_span("home-activities.mock-data") as span:
        span.set_attribute("app.result_length", len(ACTIVITIES))
        logger.info("home activities: %d results", len(ACTIVITIES))
        return JsonResponse(ACTIVITIES, safe=False)


def fail(request: HttpRequest) -> JsonResponse:
    # The manual span records the exception and ERROR status as the error leaves it.
    with tracer.start_as_current_span("fail.on-purpose") as span:
        span.set_attribute("app.reason", "demonstrates an error recorded on its span")
        logger.warning("failing on purpose")
        raise RuntimeError("this endpoint fails on purpose")
