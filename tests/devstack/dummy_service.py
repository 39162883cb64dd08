"""A stand-in service for the supervisor tests: /healthz, /readyz and /env over http.server.

Behaviour from env: DUMMY_HTTP_PORT (port), DUMMY_READY_AFTER (seconds of 503 first),
DUMMY_EXIT_AT_START (exit with that code at once), DUMMY_IGNORE_TERM (ignore SIGTERM),
DUMMY_DRAIN (seconds to "drain" after SIGTERM), DUMMY_CHILD (start a `sleep` grandchild).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ready = time.monotonic() - STARTED >= float(os.environ.get("DUMMY_READY_AFTER", "0"))
        if self.path == "/readyz":
            self._send(200 if ready else 503, {"ready": ready})
        elif self.path == "/healthz":
            self._send(200, {"ok": True})
        elif self.path == "/env":
            self._send(200, dict(os.environ))
        else:
            self._send(404, {})

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    if code := os.environ.get("DUMMY_EXIT_AT_START"):
        print("dummy: refusing to start (DUMMY_EXIT_AT_START)", flush=True)
        sys.exit(int(code))
    port = int(os.environ["DUMMY_HTTP_PORT"])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    child = subprocess.Popen(["sleep", "300"]) if os.environ.get("DUMMY_CHILD") else None
    if child:
        print(f"dummy: grandchild pid={child.pid}", flush=True)

    def on_term(signum: int, frame: object) -> None:
        print("dummy: SIGTERM, draining", flush=True)
        time.sleep(float(os.environ.get("DUMMY_DRAIN", "0")))
        if child:  # a well-behaved service stops what it started
            child.terminate()
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, signal.SIG_IGN if os.environ.get("DUMMY_IGNORE_TERM") else on_term)
    print(f"dummy: listening on {port} pid={os.getpid()}", flush=True)
    print("dummy: to stderr", file=sys.stderr, flush=True)
    server.serve_forever()
    print("dummy: stopped", flush=True)


if __name__ == "__main__":
    main()
