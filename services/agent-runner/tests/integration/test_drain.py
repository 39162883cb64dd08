"""SIGTERM drain of a real runner process (`python -m tripmesh_agent_runner`).

The runner's weather agent is pointed, by environment only, at an OpenAI-compatible HTTP
server run by this test. That server answers like the local stand-in (its `respond()`), but
holds its first answer until the test has sent SIGTERM and seen the runner's HTTP port close
(uvicorn closes it first, then runs the lifespan shutdown that drains the broker). So the job
is provably in flight while the process shuts down: it must still finish (a second LLM call
after SIGTERM), publish its result, ack, and the process must exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tripmesh_contracts import subjects
from tripmesh_contracts.ids import new_id, stable_id
from tripmesh_contracts.messages import AgentJob
from tripmesh_contracts.plans import AgentName, PlanRequest
from tripmesh_kit.bus import Bus

pytestmark = pytest.mark.integration

SLOW_MODEL = "openai/tripmesh-slow-model"
"""Unknown to litellm's price map: its usage must be priced from the fallback, never 0."""
LIVENESS = 180.0


class HeldOpenAiServer:
    """`POST /v1/chat/completions` answered by the local model's `respond()`; the first request
    waits until `release` is set."""

    def __init__(self) -> None:
        from tripmesh_agent_runner.llm.local_model import respond

        self.received = threading.Event()
        self.release = threading.Event()
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests += 1
                if outer.requests == 1:
                    outer.received.set()
                    outer.release.wait(LIVENESS)
                answer = respond(body["model"], body["messages"], {"tools": body.get("tools")})
                payload = json.dumps(answer.model_dump(), default=str).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HeldOpenAiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def llm_server() -> Iterator[HeldOpenAiServer]:
    with HeldOpenAiServer() as server:
        yield server


async def test_sigterm_finishes_the_job_in_hand_and_exits_zero(
    nats_url: str,
    bus: Bus,
    stream_reader: Any,
    trip: PlanRequest,
    new_job: Callable[..., AgentJob],
    llm_server: HeldOpenAiServer,
    tmp_path: Path,
) -> None:
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.WEATHER, trip, user_id=user_id, plan_id=plan_id)
    seq = (await bus.publish(job, subjects.agent_job(job.agent))).seq

    http_port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "AGENT_RUNNER_AGENTS": "weather",
        "AGENT_RUNNER_HTTP_PORT": str(http_port),
        "AGENT_RUNNER_DRAIN_TIMEOUT_SECONDS": str(LIVENESS),
        "WEATHER_AGENT_MODEL": SLOW_MODEL,
        "WEATHER_AGENT_API_BASE": llm_server.url,
        "AGENT_RUNNER_WEATHER_NUM_RETRIES": "0",
        "OPENAI_API_KEY": "sk-test-not-a-real-key",
        "LOG_FORMAT": "json",
    }
    log_path = tmp_path / "runner.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tripmesh_agent_runner",
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        # the job is in flight: its first LLM call is held by the server
        assert await asyncio.to_thread(llm_server.received.wait, LIVENESS), log_path.read_text()
        assert await asyncio.to_thread(_wait_until, lambda: port_open(http_port))
        proc.send_signal(signal.SIGTERM)
        # uvicorn closes its port when shutdown starts, before the lifespan drains the broker
        assert await asyncio.to_thread(_wait_until, lambda: not port_open(http_port))
        assert proc.returncode is None, "exited before finishing the job in hand"
        llm_server.release.set()
        exit_code = await asyncio.wait_for(proc.wait(), LIVENESS)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = log_path.read_text()
    assert exit_code == 0, output
    assert llm_server.requests >= 2, "the job's second LLM call (after SIGTERM) never came"

    results = await stream_reader.results(plan_id)
    assert len(results) == 1, output
    assert results[0].ok, (results[0].error_kind, results[0].error)
    assert results[0].id == stable_id(job.id, "result")
    assert results[0].model == SLOW_MODEL
    assert not await stream_reader.job_still_queued(seq), "the drained job was not acked"

    usage = await stream_reader.usage(user_id)
    assert len(usage) == llm_server.requests
    assert all(u.model == SLOW_MODEL and u.provider == "openai" for u in usage)
    # litellm has no price for this model: the fallback price applies, never a silent 0
    assert all(u.cost_usd > 0 for u in usage)


def _wait_until(condition: Callable[[], bool], timeout: float = LIVENESS) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
