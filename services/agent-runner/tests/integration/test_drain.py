"""SIGTERM drain of a real runner process (`python -m tripmesh_agent_runner`).

The runner's weather agent is pointed, by environment only, at the OpenAI-compatible stub
(tests/support/openai_stub.py), which answers like the local stand-in but holds the first
call until the test has sent SIGTERM and seen the runner's HTTP port close (uvicorn closes it
first, then runs the lifespan shutdown that drains the broker). So the job is provably in
flight while the process shuts down: it must still finish (a second LLM call after SIGTERM),
publish its result, ack, and the process must exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAiStub
from tripmesh_contracts import subjects
from tripmesh_contracts.ids import new_id, stable_id
from tripmesh_contracts.messages import AgentJob
from tripmesh_contracts.plans import AgentName, PlanRequest
from tripmesh_kit.bus import Bus

pytestmark = pytest.mark.integration

SLOW_MODEL = "openai/tripmesh-slow-model"
"""Unknown to litellm's price map: its usage must be priced from the fallback, never 0."""
LIVENESS = 180.0


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
async def llm_server() -> AsyncIterator[OpenAiStub]:
    async with OpenAiStub() as server:
        server.inject("hold")  # the job's first call waits for the test
        yield server


async def test_sigterm_finishes_the_job_in_hand_and_exits_zero(
    nats_url: str,
    bus: Bus,
    stream_reader: Any,
    trip: PlanRequest,
    new_job: Callable[..., AgentJob],
    llm_server: OpenAiStub,
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
        "AGENT_RUNNER_BUDGET_ENFORCED": "false",  # no ledger in this test
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
        try:
            await asyncio.wait_for(llm_server.held.wait(), LIVENESS)
        except TimeoutError:
            raise AssertionError(f"the job never reached the LLM:\n{log_path.read_text()}") from None
        assert await asyncio.to_thread(_wait_until, lambda: port_open(http_port))
        proc.send_signal(signal.SIGTERM)
        # uvicorn closes its port when shutdown starts, before the lifespan drains the broker
        assert await asyncio.to_thread(_wait_until, lambda: not port_open(http_port))
        assert proc.returncode is None, "exited before finishing the job in hand"
        llm_server.release()
        exit_code = await asyncio.wait_for(proc.wait(), LIVENESS)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = log_path.read_text()
    assert exit_code == 0, output
    assert len(llm_server.calls) >= 2, "the job's second LLM call (after SIGTERM) never came"

    results = await stream_reader.results(plan_id)
    assert len(results) == 1, output
    assert results[0].ok, (results[0].error_kind, results[0].error)
    assert results[0].id == stable_id(job.id, "result")
    assert results[0].model == SLOW_MODEL
    assert not await stream_reader.job_still_queued(seq), "the drained job was not acked"

    usage = await stream_reader.usage(user_id)
    assert len(usage) == len(llm_server.calls)
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
