"""The real provider path: the runner talks to an OpenAI-compatible HTTP server (the stub)
through litellm's OpenAI provider, configured by settings only (`openai/stub` + api_base).

The stub's call log is the oracle for usage: every HTTP request it answered - a completion,
a 429, a 500 or a held request the client gave up on - must be exactly one usage event on
the USAGE stream, with an id of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from openai_stub import OpenAiStub
from runner_support import publish_job, runner_settings
from tripmesh_agent_runner.agents import AGENTS
from tripmesh_agent_runner.app import create_app
from tripmesh_contracts.ids import new_id, stable_id
from tripmesh_contracts.messages import AgentJob, UsageEvent
from tripmesh_contracts.plans import AgentName, PlanRequest
from tripmesh_kit.bus import Bus

pytestmark = pytest.mark.integration

STUB_MODEL = "openai/stub"
"""Unknown to litellm's price map: priced from the fallback, never 0."""


@pytest.fixture
async def stub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OpenAiStub]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    async with OpenAiStub(hang_seconds=30) as server:
        yield server


def on_stub(stub: OpenAiStub, *agents: AgentName, **values: Any) -> dict[str, dict[str, Any]]:
    """Per-agent overrides pointing `agents` at the stub (small backoff: tests wait less)."""
    config = {"model": STUB_MODEL, "api_base": stub.url, "num_retries": 2, "timeout_seconds": 20, **values}
    return {a.value: dict(config) for a in agents}


def assert_usage_matches_stub(usage: list[UsageEvent], stub: OpenAiStub, agent: AgentName) -> None:
    """One usage event per request the stub answered, in order, with matching outcome and tokens."""
    calls = stub.calls_of(agent.value)
    events = sorted((u for u in usage if u.agent == agent), key=lambda u: u.occurred_at)
    assert len(events) == len(calls), ([c.answer for c in calls], [u.success for u in events])
    for call, event in zip(calls, events, strict=True):
        assert event.success == (call.answer == "ok"), (call, event)
        assert (event.model, event.provider) == (STUB_MODEL, "openai")
        if call.answer == "ok":
            assert (event.prompt_tokens, event.completion_tokens) == (
                call.prompt_tokens,
                call.completion_tokens,
            )
            assert event.cost_usd > 0  # fallback price for a model litellm cannot price
        else:
            assert event.error and event.cost_usd == 0 and event.prompt_tokens == 0
    assert len({u.id for u in usage}) == len(usage)


async def test_jobs_complete_through_litellm_over_http_with_tool_calls(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub,
) -> None:  # fmt: skip
    agents = [AgentName.LOCATION, AgentName.TRANSPORT]
    app = create_app(runner_settings(nats_url, agents, agent_overrides=on_stub(stub, *agents)))
    user_id, plan_id = f"u-{new_id()}", new_id()
    jobs = [new_job(a, trip, user_id=user_id, plan_id=plan_id) for a in agents]
    async with app.router.lifespan_context(app):
        for job in jobs:
            await publish_job(bus, job)
        results = await stream_reader.wait_job_results(plan_id, [j.id for j in jobs])
    usage = await stream_reader.usage(user_id)
    for job in jobs:
        result = results[job.id]
        assert result.ok, (job.agent, result.error_kind, result.error)
        assert result.model == STUB_MODEL and result.id == stable_id(job.id, "result")
        AGENTS[job.agent].output_model.model_validate(result.output)
        calls = stub.calls_of(job.agent.value)
        # the model asked for tools first, then answered: at least two HTTP round trips
        assert len(calls) >= 2 and calls[0].tool_calls > 0 and calls[-1].tool_calls == 0
        assert_usage_matches_stub(usage, stub, job.agent)
        assert result.prompt_tokens == sum(c.prompt_tokens for c in calls)


async def test_injected_429_and_500_are_retried_and_every_attempt_is_billed_once(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub,
) -> None:  # fmt: skip
    stub.inject("429", "500", agent="weather")  # the first request fails twice, then succeeds
    overrides = on_stub(stub, AgentName.WEATHER, num_retries=2)
    app = create_app(runner_settings(nats_url, [AgentName.WEATHER], agent_overrides=overrides,
                                     retry_backoff_seconds=0.05))  # fmt: skip
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.WEATHER, trip, user_id=user_id, plan_id=plan_id)
    async with app.router.lifespan_context(app):
        seq = await publish_job(bus, job)
        result = (await stream_reader.wait_job_results(plan_id, [job.id]))[job.id]
        await stream_reader.until(lambda: stream_reader.job_acked(seq))
    assert result.ok, (result.error_kind, result.error)
    answers = [c.answer for c in stub.calls_of("weather")]
    assert answers[:3] == ["429", "500", "ok"] and set(answers[3:]) == {"ok"}
    usage = await stream_reader.usage(user_id)
    assert_usage_matches_stub(usage, stub, AgentName.WEATHER)
    first_turn = sorted(usage, key=lambda u: u.occurred_at)[:3]
    assert [u.attempt for u in first_turn] == [1, 2, 3]
    # the job itself ran once: the retries were calls, not redeliveries
    assert await stream_reader.count("AGENT_RESULTS", f"agents.result.{plan_id}") == 1


async def test_a_provider_that_never_answers_is_an_llm_error_after_bounded_retries(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub,
) -> None:  # fmt: skip
    stub.inject("timeout", "timeout", agent="activity")
    overrides = on_stub(stub, AgentName.ACTIVITY, num_retries=1, timeout_seconds=1)
    app = create_app(runner_settings(nats_url, [AgentName.ACTIVITY], agent_overrides=overrides,
                                     retry_backoff_seconds=0.05))  # fmt: skip
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.ACTIVITY, trip, user_id=user_id, plan_id=plan_id)
    async with app.router.lifespan_context(app):
        seq = await publish_job(bus, job)
        result = (await stream_reader.wait_job_results(plan_id, [job.id]))[job.id]
        await stream_reader.until(lambda: stream_reader.job_acked(seq))
    assert not result.ok and result.error_kind == "llm_error", result
    assert "Timeout" in (result.error or "")
    assert [c.answer for c in stub.calls_of("activity")] == ["timeout", "timeout"]
    usage = await stream_reader.usage(user_id)
    assert_usage_matches_stub(usage, stub, AgentName.ACTIVITY)
    assert [u.attempt for u in usage] == [1, 2] and not any(u.success for u in usage)


async def test_litellms_own_retries_hide_the_failed_attempts(stub: OpenAiStub) -> None:
    """Why the engine owns the retry loop: with litellm's num_retries a request that failed
    once and then succeeded returns one ordinary response - the failed attempt leaves no
    trace the runner could turn into a usage event. If this starts failing, litellm began
    reporting attempts and the decision in agents/llm_calls.py deserves a second look."""
    from tripmesh_agent_runner.llm.litellm_import import load_litellm

    litellm = load_litellm()
    stub.inject("500")
    messages = [{"role": "system", "content": "agent: nobody"}, {"role": "user", "content": "hi"}]
    response = await litellm.acompletion(
        model=STUB_MODEL, messages=messages, api_base=stub.url, num_retries=1
    )
    assert [c.answer for c in stub.calls] == ["500", "ok"]
    assert response.choices[0].message.content  # an ordinary answer
    hidden = getattr(response, "_hidden_params", {}) or {}
    assert not any("retr" in str(k).lower() and v for k, v in hidden.items()), hidden
