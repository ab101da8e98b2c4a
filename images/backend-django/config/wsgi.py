"""The WSGI entry point gunicorn serves: `config.wsgi:application`."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.telemetry import configure_tracing  # noqa: E402 - settings module first

configure_tracing()  # before the app is built: the Django instrumentor adds its middleware

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
