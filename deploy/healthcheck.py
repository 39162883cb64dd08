"""Docker HEALTHCHECK: GET /healthz on the port the service listens on; exit 0 when it answers 200.

Standard library only (the slim image has no curl). The image names the variable holding the
port in TRIPMESH_PORT_ENV (GATEWAY_PORT, PLANNER_HTTP_PORT, ...).
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    port = os.environ[os.environ["TRIPMESH_PORT_ENV"]]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return 0 if reply.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
