"""The runner in-process against real NATS and the real engine with the local model."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from runner_support import publish_job, runner_settings
from tripmesh_agent_runner.agents import AGENTS
from tripmesh_agent_runner.app import create_app
from tripmesh_agent_runner.domain import Delivery
from tripmesh_agent_runner.llm.base import LOCAL_MODEL, LOCAL_PROVIDER
from tripmesh_contracts import subjects
from tripmesh_contracts.ids import new_id, stable_id
from tripmesh_contracts.messages import AgentJob
from tripmesh_contracts.plans import AgentName, PlanRequest
from tripmesh_kit.bus import Bus

pytestmark = pytest.mark.integration

STAGES = [
    [AgentName.LOCATION, AgentName.WEATHER],
    [AgentName.TRANSPORT, AgentName.ACCOMMODATION, AgentName.ACTIVITY],
    [AgentName.BUDGET],
    [AgentName.PLANNING],
]


async def test_every_agent_type_answers_a_real_trip(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob]
) -> None:
    app = create_app(runner_settings(nats_url))
    user_id, plan_id, run_id = f"u-{new_id()}", new_id(), new_id()
    jobs: dict[AgentName, AgentJob] = {}
    async with app.router.lifespan_context(app):
        context: dict[str, Any] = {}
        # stage by stage, as the planner does: each stage builds on the outputs before it
        for stage in STAGES:
            stage_jobs = [
                new_job(a, trip, user_id=user_id, plan_id=plan_id, run_id=run_id, context=dict(context))
                for a in stage
            ]
            for job in stage_jobs:
                jobs[job.agent] = job
                await publish_job(bus, job)
            results = await stream_reader.wait_job_results(plan_id, [j.id for j in stage_jobs])
            for job in stage_jobs:
                result = results[job.id]
                assert result.ok, (job.agent, result.error_kind, result.error)
                assert result.id == stable_id(job.id, "result")
                assert (result.agent, result.run_id, result.stage) == (job.agent, run_id, job.stage)
                assert result.output is not None
                AGENTS[job.agent].output_model.model_validate(result.output)
                assert result.prompt_tokens > 0 and result.completion_tokens > 0
                assert result.model == LOCAL_MODEL
                context[job.agent.value] = result.output

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://runner"
        ) as http:
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            metrics = (await http.get("/metrics")).text

    usage = await stream_reader.usage(user_id)
    results = {r.job_id: r for r in await stream_reader.results(plan_id)}
    assert len(results) == 7
    for agent, job in jobs.items():
        calls = [u for u in usage if u.job_id == job.id]
        assert calls, f"no usage event for {agent}"
        assert all(u.model == LOCAL_MODEL and u.provider == LOCAL_PROVIDER for u in calls)
        assert all(u.success and u.prompt_tokens > 0 and u.agent == agent for u in calls)
        assert all((u.plan_id, u.run_id, u.version) == (plan_id, run_id, 1) for u in calls)
        # the result's totals are exactly the sum of its calls' usage events
        assert sum(u.prompt_tokens for u in calls) == results[job.id].prompt_tokens
        assert sum(u.completion_tokens for u in calls) == results[job.id].completion_tokens
    assert len({u.id for u in usage}) == len(usage)

    for agent in AgentName:
        assert (
            f'tripmesh_llm_calls_total{{agent="{agent.value}",model="{LOCAL_MODEL}",outcome="ok"}}' in metrics
        )
        assert f'tripmesh_agent_jobs_total{{agent="{agent.value}",outcome="ok"}}' in metrics
        assert f'tripmesh_agent_job_seconds_count{{agent="{agent.value}"}}' in metrics
    assert 'tripmesh_llm_tokens_total{agent="planning",kind="prompt"' in metrics
    assert 'tripmesh_llm_cost_usd_total{agent="planning"' in metrics


async def test_redelivered_job_publishes_one_result_and_bills_both_runs(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob]
) -> None:
    app = create_app(runner_settings(nats_url, [AgentName.WEATHER]))
    runner = app.state.runner
    real_run_job = runner.run_job
    runs: list[tuple[Delivery, str]] = []

    async def ack_lost_after_first_run(job: AgentJob, delivery: Delivery) -> Any:
        result = await real_run_job(job, delivery)
        runs.append((delivery, result.id))
        if delivery.delivered == 1:
            # as if the process died after publishing, before its ack reached the server
            raise ConnectionError("connection lost before the ack")
        return result

    runner.run_job = ack_lost_after_first_run
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.WEATHER, trip, user_id=user_id, plan_id=plan_id)
    async with app.router.lifespan_context(app):
        seq = await publish_job(bus, job)

        async def acked_after_second_run() -> bool:
            return len(runs) == 2 and not await stream_reader.job_still_queued(seq)

        await stream_reader.until(acked_after_second_run)

    assert [d.delivered for d, _ in runs] == [1, 2]
    assert {rid for _, rid in runs} == {stable_id(job.id, "result")}
    # the second publish carried the same Nats-Msg-Id: the stream kept one result
    assert await stream_reader.count("AGENT_RESULTS", subjects.agent_result(plan_id)) == 1
    # both runs called the LLM, and both were billed: distinct usage ids, twice the calls
    results = await stream_reader.results(plan_id)
    usage = await stream_reader.usage(user_id)
    assert len({u.id for u in usage}) == len(usage)
    assert all(u.job_id == job.id for u in usage)
    assert sum(u.prompt_tokens for u in usage) == 2 * results[0].prompt_tokens > 0


async def test_transport_replica_takes_only_transport_jobs(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob]
) -> None:
    user_id, plan_id = f"u-{new_id()}", new_id()
    transport = new_job(AgentName.TRANSPORT, trip, user_id=user_id, plan_id=plan_id)
    location = new_job(AgentName.LOCATION, trip, user_id=user_id, plan_id=plan_id)
    transport_only = create_app(runner_settings(nats_url, [AgentName.TRANSPORT]))
    assert transport_only.state.agents == [AgentName.TRANSPORT]
    async with transport_only.router.lifespan_context(transport_only):
        location_seq = await publish_job(bus, location)
        await publish_job(bus, transport)
        results = await stream_reader.wait_job_results(plan_id, [transport.id])
        assert results[transport.id].ok
    # the transport replica never fetched the location job: still queued, no result
    assert await stream_reader.job_still_queued(location_seq)
    assert location.id not in {r.job_id for r in await stream_reader.results(plan_id)}

    # a replica serving location picks up the job that was waiting for it
    location_pool = create_app(runner_settings(nats_url, [AgentName.LOCATION]))
    async with location_pool.router.lifespan_context(location_pool):
        results = await stream_reader.wait_job_results(plan_id, [location.id])
    assert results[location.id].ok
    assert not await stream_reader.job_still_queued(location_seq)


async def test_job_long_past_its_deadline_is_answered_without_llm_calls(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob]
) -> None:
    app = create_app(runner_settings(nats_url, [AgentName.BUDGET], deadline_grace_seconds=60))
    user_id, plan_id = f"u-{new_id()}", new_id()
    stale = new_job(
        AgentName.BUDGET,
        trip,
        user_id=user_id,
        plan_id=plan_id,
        deadline=datetime.now(UTC) - timedelta(hours=1),
    )
    async with app.router.lifespan_context(app):
        seq = await publish_job(bus, stale)
        result = (await stream_reader.wait_job_results(plan_id, [stale.id]))[stale.id]
        await stream_reader.until(lambda: stream_reader.job_acked(seq))
    assert not result.ok and result.error_kind == "deadline_exceeded"
    # usage events are published before the result: none exist, so no LLM call was made
    assert await stream_reader.usage(user_id) == []


async def test_unreachable_llm_is_a_failed_result_not_a_failed_message(
    nats_url: str,
    bus: Bus,
    stream_reader: Any,
    trip: PlanRequest,
    new_job: Callable[..., AgentJob],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    unreachable = {
        "model": "openai/gpt-5-mini",
        "api_base": f"http://127.0.0.1:{closed_port}/v1",
        "num_retries": 0,
        "timeout_seconds": 5,
    }
    app = create_app(
        runner_settings(nats_url, [AgentName.ACTIVITY], agent_overrides={"activity": unreachable})
    )
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.ACTIVITY, trip, user_id=user_id, plan_id=plan_id)
    async with app.router.lifespan_context(app):
        seq = await publish_job(bus, job)
        result = (await stream_reader.wait_job_results(plan_id, [job.id]))[job.id]
        await stream_reader.until(lambda: stream_reader.job_acked(seq))
    assert not result.ok and result.error_kind == "llm_error", result
    assert result.output is None and result.error
    usage = await stream_reader.usage(user_id)
    assert len(usage) == 1
    assert not usage[0].success and usage[0].error
    assert (usage[0].model, usage[0].provider) == ("openai/gpt-5-mini", "openai")
