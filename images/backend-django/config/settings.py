"""Settings for backend-django: a stateless JSON API, configured from the environment."""

import os
from pathlib import Path

from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

# Pass DJANGO_SECRET_KEY at run time (docker run -e). Without it each process makes its own key:
# fine for this API (no sessions, no signed cookies), wrong for an app that signs anything.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or get_random_secret_key()
DEBUG = os.environ.get("DJANGO_DEBUG", "").lower() in ("1", "true")
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "activities",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from gunicorn: collected and compressed at build (collectstatic).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}  # nothing to store
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The app's records go to stderr and, propagating to the root logger, through OpenTelemetry's
# logging handler (attached at start-up) to the OTLP endpoint. Configuring "root" here would
# replace that handler: the root logger is left as OpenTelemetry set it up.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"backend-django": {"handlers": ["console"], "level": "INFO", "propagate": True}},
}
