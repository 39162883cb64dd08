"""Issue #10, logs: JSON lines with `service` on every line, trace ids inside traced work, and
never a password, token or API key - over a real e2e run at DEBUG level.

The stack is this module's own (LOG_FORMAT=json, LOG_LEVEL=DEBUG, tracing on towards a sink
run by the test, which accepts and drops the spans), so its logs hold only this test's work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from client import TERMINAL, User
from conftest import StackFactory
from tripmesh_devstack.services import default_services
from tripmesh_devstack.supervisor import Stack

pytestmark = pytest.mark.e2e

PASSWORD = "Zebra-Quartz-Pamplemousse-8317"  # distinctive: a substring match means it leaked
DEVSTACK_LINE = b"--- devstack:"


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def json_stack(otlp_sink: str, stack_factory: StackFactory) -> Stack:
    # the sink first: it then outlives the stack, which exports its last spans as it stops
    env = {
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    return stack_factory("logs", default_services(free_ports=True), env=env)


def log_lines(stack: Stack) -> dict[str, list[bytes]]:
    return {
        path.stem: [line for line in path.read_bytes().splitlines() if line.strip()]
        for path in sorted(stack.logs_dir.glob("*.log"))
    }


async def test_logs_are_json_and_never_hold_a_secret(json_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=json_stack.gateway_url, timeout=30) as http:
        user = User(http, "logs-secrets@example.com", "logs_secrets", PASSWORD)
        await user.signup_and_login()
        r = await http.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        session = r.json()
        r = await http.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert (await user.get("/api/v1/auth/me")).status_code == 200
        r = await user.post("/api/v1/auth/api-keys", json={"name": "ci"})
        assert r.status_code == 201, r.text
        api_key = r.json()["key"]

        by_key = User(http, user.email, user.username, PASSWORD, token=api_key)
        plan_id = await by_key.create_plan()
        plan = await by_key.wait_for_plan(plan_id, lambda p: p["status"] in TERMINAL)
        assert plan["status"] in ("completed", "partial"), plan["status"]
        wrong = await http.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD + "x"})
        assert wrong.status_code == 401

    secrets = {
        "password": PASSWORD,
        "access token": user.token,
        "second access token": session["access_token"],
        "refresh token": session["refresh_token"],
        "rotated access token": rotated["access_token"],
        "rotated refresh token": rotated["refresh_token"],
        "API key": api_key,
    }
    logs = log_lines(json_stack)
    assert set(logs) >= {"gateway", "planner", "agent-runner", "cost-ledger", "vector-sync"}, sorted(logs)
    for name, lines in logs.items():
        text = b"\n".join(lines).decode("utf-8", "replace")
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} is in {name}'s log"
        for raw in lines:
            if raw.startswith(DEVSTACK_LINE):
                continue  # the supervisor's marker between two runs of a process
            try:
                line = json.loads(raw)
            except ValueError:
                pytest.fail(f"{name}: not a JSON line: {raw[:300]!r}")
            assert isinstance(line, dict) and line.get("service"), f"{name}: no service in {raw[:300]!r}"

    # the plan's own lines name it, and traced work carries the trace
    def mentioning(name: str) -> list[dict[str, Any]]:
        found = []
        for raw in logs[name]:
            if not raw.startswith(DEVSTACK_LINE):
                line = json.loads(raw)
                if line.get("plan_id") == plan_id:
                    found.append(line)
        return found

    for name in ("planner", "agent-runner"):
        lines = mentioning(name)
        assert lines, f"no {name} line names the plan"
        assert all(line.get("user_id") == user.user_id for line in lines if "user_id" in line)
        assert any(line.get("trace_id") and line.get("span_id") for line in lines), (
            f"no {name} line about the plan carries trace_id/span_id"
        )
    assert any(line.get("agent") for line in mentioning("agent-runner"))
