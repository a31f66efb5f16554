"""The service image's HEALTHCHECK: GET /health of the server in this container; exit 0 on 200, else 1.

Standard library only (the image has no curl). It asks the address `python -m serving` listens on (SERVING_HOST,
SERVING_PORT), a wildcard address through loopback, and ignores proxy variables of the environment (a proxy set
for S3 must not carry a loopback request).
"""

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

TIMEOUT_S = 4.0  # below the HEALTHCHECK --timeout of the Dockerfile
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def health_url(environ: Mapping[str, str]) -> str:
    host = environ.get("SERVING_HOST", "").strip() or "127.0.0.1"
    host = WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    port = environ.get("SERVING_PORT", "").strip() or "8000"
    return f"http://{host}:{port}/health"


def main() -> int:
    url = health_url(os.environ)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
