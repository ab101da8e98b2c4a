"""HEALTHCHECK without a shell or curl: exit 0 when the service's health URL answers 2xx/3xx."""

import os
import sys
import urllib.request

url = os.environ.get("IMAGEWRIGHT_HEALTH_URL", "")
# A proxy set for the app's outbound calls must not intercept the container's own loopback.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(url, timeout=3) as response:
        sys.exit(0 if 200 <= response.status < 400 else 1)
except Exception as error:  # any failure means unhealthy; say why in `docker inspect`
    print(f"unhealthy: {url}: {error}", file=sys.stderr)
    sys.exit(1)
