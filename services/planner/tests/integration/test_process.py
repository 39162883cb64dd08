"""The planner as operators run it: `python -m tripmesh_planner`, env only, SIGTERM drains."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_process_serves_health_readiness_metrics_and_exits_0_on_sigterm(
    nats_url: str,
    fresh_database_url: str,
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "PLANNER_DATABASE_URL": fresh_database_url,
        "PLANNER_HTTP_PORT": str(port),
        "LOG_FORMAT": "json",
    }
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tripmesh_planner"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60  # liveness bound
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        assert ready.json()["dependencies"] == ["nats", "postgres"]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "tripmesh_planner_graph_invocations_total" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None and b"planner_stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
