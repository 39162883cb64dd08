"""The shared cache (a JetStream KV bucket) and the plan-status skip, on real NATS."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from openai_stub import OpenAiStub
from prometheus_client import REGISTRY
from runner_support import publish_job, runner_settings
from tripmesh_agent_runner.app import create_app
from tripmesh_agent_runner.plan_status import plan_status_config, plan_status_key
from tripmesh_contracts.ids import new_id
from tripmesh_contracts.messages import AgentJob
from tripmesh_contracts.plans import AgentName, PlanRequest
from tripmesh_kit.bus import Bus

pytestmark = pytest.mark.integration

STUB_MODEL = "openai/stub"


@pytest.fixture
async def stub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OpenAiStub]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    async with OpenAiStub() as server:
        yield server


@pytest.fixture
async def bucket(bus: Bus) -> AsyncIterator[str]:
    """A KV bucket name of this test's own, deleted afterwards."""
    name = f"test-{new_id()}"
    yield name
    with contextlib.suppress(Exception):
        await bus.js.delete_key_value(name)


def tool_cache_hits() -> float:
    return REGISTRY.get_sample_value(
        "tripmesh_agent_runner_cache_lookups_total", {"kind": "tool", "outcome": "hit"}
    ) or 0.0  # fmt: skip


async def test_a_second_identical_job_is_served_by_the_cache_another_replica_filled(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub, bucket: str,
) -> None:  # fmt: skip
    overrides = {"weather": {"model": STUB_MODEL, "api_base": stub.url, "num_retries": 0}}

    def replica() -> Any:  # each app: its own NATS connection and KvCache, one bucket
        return create_app(runner_settings(nats_url, [AgentName.WEATHER], agent_overrides=overrides,
                                          cache_enabled=True, cache_bucket=bucket))  # fmt: skip

    first_user, second_user = f"u-{new_id()}", f"u-{new_id()}"
    first = new_job(AgentName.WEATHER, trip, user_id=first_user, plan_id=new_id())
    second = new_job(AgentName.WEATHER, trip, user_id=second_user, plan_id=new_id())  # same trip

    app_one = replica()
    async with app_one.router.lifespan_context(app_one):
        await publish_job(bus, first)
        first_result = (await stream_reader.wait_job_results(first.plan_id, [first.id]))[first.id]
    calls_after_first = len(stub.calls)
    hits_before = tool_cache_hits()

    app_two = replica()
    async with app_two.router.lifespan_context(app_two):
        await publish_job(bus, second)
        second_result = (await stream_reader.wait_job_results(second.plan_id, [second.id]))[second.id]

    assert first_result.ok and second_result.ok
    assert calls_after_first >= 2 and len(stub.calls) == calls_after_first  # no second HTTP call
    assert second_result.output == first_result.output
    first_usage = sorted(await stream_reader.usage(first_user), key=lambda u: u.occurred_at)
    second_usage = sorted(await stream_reader.usage(second_user), key=lambda u: u.occurred_at)
    assert not any(u.cache_hit for u in first_usage) and all(u.cost_usd > 0 for u in first_usage)
    # one usage event per answer served, each a cache hit at cost 0 with the cached tokens
    assert len(second_usage) == len(first_usage)
    for paid, cached in zip(first_usage, second_usage, strict=True):
        assert cached.cache_hit and cached.success and cached.cost_usd == 0
        assert (cached.prompt_tokens, cached.completion_tokens) == (
            paid.prompt_tokens,
            paid.completion_tokens,
        )
    assert {u.id for u in second_usage}.isdisjoint({u.id for u in first_usage})
    assert second_result.cost_usd == 0
    # the cached answer asked for tools again: their lookups came from the cache too
    assert tool_cache_hits() > hits_before


async def test_the_cache_bucket_is_created_once_with_the_ttl(nats_url: str, bus: Bus, bucket: str) -> None:
    settings = runner_settings(nats_url, [AgentName.BUDGET], cache_enabled=True, cache_bucket=bucket,
                               cache_ttl_seconds=600)  # fmt: skip
    for _ in range(2):  # a second replica (or a restart) finds it and keeps it
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            pass
    info = await bus.js.stream_info(f"KV_{bucket}")
    assert info.config.max_age == 600 and info.config.max_msgs_per_subject == 1


async def test_a_job_of_a_cancelled_run_is_skipped_without_llm_calls(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    bucket: str,
) -> None:  # fmt: skip
    # as the planner does on cancel: <plan_id>.<run_id> = cancelled
    board = await bus.js.create_key_value(plan_status_config(bucket))
    user_id, plan_id = f"u-{new_id()}", new_id()
    cancelled = new_job(AgentName.LOCATION, trip, user_id=user_id, plan_id=plan_id, run_id="run-cancelled")
    revised = new_job(AgentName.LOCATION, trip, user_id=user_id, plan_id=plan_id, run_id="run-revised")
    await board.put(plan_status_key(plan_id, cancelled.run_id), b"cancelled")

    app = create_app(runner_settings(nats_url, [AgentName.LOCATION], plan_status_bucket=bucket))
    async with app.router.lifespan_context(app):
        seq = await publish_job(bus, cancelled)
        await publish_job(bus, revised)
        results = await stream_reader.wait_job_results(plan_id, [cancelled.id, revised.id])
        await stream_reader.until(lambda: stream_reader.job_acked(seq))

    skipped, ran = results[cancelled.id], results[revised.id]
    assert not skipped.ok and skipped.error_kind == "cancelled" and skipped.output is None
    assert skipped.prompt_tokens == 0 and skipped.cost_usd == 0
    # a later run of the same plan (a revision) is not affected: its key is missing
    assert ran.ok, (ran.error_kind, ran.error)
    usage = await stream_reader.usage(user_id)
    assert usage and {u.job_id for u in usage} == {revised.id}  # no LLM call for the skipped job
