"""A unit of work with its own span, inside the auto-instrumented request span."""

import logging
from datetime import UTC, datetime, timedelta

from opentelemetry import trace

tracer = trace.get_tracer("backend-flask.home-activities")
logger = logging.getLogger("backend-flask.home-activities")


class HomeActivities:
    @staticmethod
    def run() -> list[dict[str, object]]:
        with tracer.start_as_current_span("home-activities.mock-data") as span:
            now = datetime.now(UTC)
            span.set_attribute("app.now", now.isoformat())
            results = [
                {
                    "uuid": "68f126b0-1ceb-4a33-88be-d90fa7109eee",
                    "handle": "Andrew Brown",
                    "message": "Cloud is very fun!",
                    "created_at": (now - timedelta(days=2)).isoformat(),
                    "expires_at": (now + timedelta(days=5)).isoformat(),
                    "likes_count": 5,
                    "replies_count": 1,
                },
                {
                    "uuid": "66e12864-8c26-4c3a-9658-95a10f8fea67",
                    "handle": "Worf",
                    "message": "This post has no honor!",
                    "created_at": (now - timedelta(days=7)).isoformat(),
                    "expires_at": (now + timedelta(days=9)).isoformat(),
                    "likes_count": 0,
                    "replies_count": 0,
                },
            ]
            span.set_attribute("app.result_length", len(results))
            logger.info("home activities: %d results", len(results))
            return results
