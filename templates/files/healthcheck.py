"""HEALTHCHECK without a shell or curl: exit 0 when the service is ready.

IMAGEWRIGHT_HEALTH_URL is the service's health URL (ready: it answers 2xx/3xx) or, for a service
without a health route, `tcp://127.0.0.1:<port>` (ready: the port accepts connections).
"""

import os
import socket
import sys
import urllib.parse
import urllib.request

url = os.environ.get("IMAGEWRIGHT_HEALTH_URL", "")
try:
    target = urllib.parse.urlsplit(url)
    if target.scheme == "tcp":
        with socket.create_connection((target.hostname or "127.0.0.1", target.port or 0), timeout=3):
            sys.exit(0)
    # A proxy set for the app's outbound calls must not intercept the container's own loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=3) as response:
        sys.exit(0 if 200 <= response.status < 400 else 1)
except Exception as error:  # any failure means unhealthy; say why in `docker inspect`
    print(f"unhealthy: {url}: {error}", file=sys.stderr)
    sys.exit(1)
