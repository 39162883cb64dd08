"""The engine's retry loop (the retry owner of the LLM hop) and the caching layers, on
scripted LLMs and an in-memory cache (the KV bucket itself is tested on real NATS)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tripmesh_agent_runner.agents import AGENTS, run_agent
from tripmesh_agent_runner.agents.llm_calls import backoff_delay
from tripmesh_agent_runner.domain import Delivery, usage_event
from tripmesh_agent_runner.llm.base import LlmCallConfig, LlmCallError, LlmResponse, ToolCallRequest
from tripmesh_agent_runner.llm.caching import CachingLlmClient
from tripmesh_agent_runner.tools import ToolRegistry, build_tool_registry
from tripmesh_contracts import AgentJob, AgentName

JobFactory = Callable[..., AgentJob]
WEATHER_OK = {
    "destinations": [
        {"destination": d, "month": 11, "avg_high_c": 18, "avg_low_c": 10, "rain_days": 10,
         "summary": "Mild", "source": "estimate"}
        for d in ("Lisbon", "Porto")
    ]
}  # fmt: skip
RETRYING = LlmCallConfig(
    model="openai/x", num_retries=2, retry_backoff_seconds=1.0, retry_backoff_max_seconds=8
)


class ScriptedLlm:
    def __init__(self, *responses: LlmResponse | Exception) -> None:
        self.responses = list(responses)
        self.calls: list[dict[str, Any]] = []

    async def complete(self, **kwargs: Any) -> LlmResponse:
        self.calls.append(kwargs)
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


class MemoryCache:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.gets: list[str] = []

    async def get(self, key: str) -> bytes | None:
        self.gets.append(key)
        return self.entries.get(key)

    async def put(self, key: str, value: bytes) -> None:
        self.entries[key] = value


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def answer(payload: Any, tokens: tuple[int, int] = (200, 50)) -> LlmResponse:
    return LlmResponse(content=json.dumps(payload), prompt_tokens=tokens[0], completion_tokens=tokens[1],
                       provider="openai", cost_usd=Decimal("0.002"))  # fmt: skip


def rate_limited(retry_after: float | None = None) -> LlmCallError:
    return LlmCallError("RateLimitError: slow down", provider="openai", transient=True, status_code=429,
                        retry_after=retry_after)  # fmt: skip


async def test_transient_failures_are_retried_and_each_attempt_is_recorded(
    make_job: JobFactory, tools: ToolRegistry
) -> None:
    server_error = LlmCallError("InternalServerError", provider="openai", transient=True, status_code=500)
    llm = ScriptedLlm(rate_limited(retry_after=3), server_error, answer(WEATHER_OK))
    sleeps = Sleeps()
    outcome = await run_agent(make_job(AgentName.WEATHER), llm, tools, config=RETRYING, sleep=sleeps)
    assert outcome.ok, outcome.error
    assert len(llm.calls) == 3
    assert [(c.success, c.attempt, c.turn) for c in outcome.llm_calls] == [
        (False, 1, 1), (False, 2, 1), (True, 3, 1),
    ]  # fmt: skip
    assert [c.call_index for c in outcome.llm_calls] == [1, 2, 3]
    # the 429's Retry-After is obeyed; the 500 waits the jittered second step (1-2 s)
    assert sleeps.delays[0] == 3 and 1.0 <= sleeps.delays[1] <= 2.0
    # the failed attempts cost nothing and carry their error
    assert all(c.cost_usd == 0 and c.error for c in outcome.llm_calls[:2])
    # one usage id per attempt
    ids = {usage_event(make_job(AgentName.WEATHER), Delivery(7, 1), c).id for c in outcome.llm_calls}
    assert len(ids) == 3


async def test_retries_are_bounded_then_the_job_fails_with_llm_error(
    make_job: JobFactory, tools: ToolRegistry
) -> None:
    timeout = LlmCallError("Timeout: no answer in 60s", provider="openai", transient=True, latency_ms=60_000)
    llm = ScriptedLlm(timeout, timeout, timeout, answer(WEATHER_OK))
    outcome = await run_agent(make_job(AgentName.WEATHER), llm, tools, config=RETRYING, sleep=Sleeps())
    assert outcome.error_kind == "llm_error" and outcome.retryable
    assert len(llm.calls) == 3 == len(outcome.llm_calls)  # 1 + num_retries attempts, no more
    assert [c.attempt for c in outcome.llm_calls] == [1, 2, 3]


async def test_a_permanent_failure_is_not_retried(make_job: JobFactory, tools: ToolRegistry) -> None:
    bad_request = LlmCallError("BadRequestError: context too long", provider="openai", status_code=400)
    llm = ScriptedLlm(bad_request, answer(WEATHER_OK))
    outcome = await run_agent(make_job(AgentName.WEATHER), llm, tools, config=RETRYING, sleep=Sleeps())
    assert outcome.error_kind == "llm_error" and not outcome.retryable
    assert len(llm.calls) == 1


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    for retry, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)):
        delay = backoff_delay(retry, RETRYING, None, rng)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(1, RETRYING, 120.0, rng) == 8.0  # Retry-After, but never past the cap


async def test_identical_requests_are_answered_from_the_cache(
    make_job: JobFactory, tools: ToolRegistry
) -> None:
    cache = MemoryCache()
    first = ScriptedLlm(answer(WEATHER_OK, tokens=(321, 45)))
    one = await run_agent(make_job(AgentName.WEATHER), CachingLlmClient(first, cache), tools)
    assert one.ok and len(cache.entries) == 1
    empty = ScriptedLlm()  # would fail if it were called
    two = await run_agent(make_job(AgentName.WEATHER), CachingLlmClient(empty, cache), tools)
    assert two.ok and two.output == one.output and empty.calls == []
    (hit,) = two.llm_calls
    assert hit.cache_hit and hit.success and hit.cost_usd == 0
    assert (hit.prompt_tokens, hit.completion_tokens, hit.provider) == (321, 45, "openai")
    # a different trip is a different request
    other = ScriptedLlm(answer(WEATHER_OK))
    await run_agent(make_job(AgentName.WEATHER, travelers=3), CachingLlmClient(other, cache), tools)
    assert len(other.calls) == 1 and len(cache.entries) == 2


async def test_rejected_answers_are_never_cached(make_job: JobFactory, tools: ToolRegistry) -> None:
    cache = MemoryCache()
    llm = ScriptedLlm(answer({"destinations": []}), answer(WEATHER_OK))
    outcome = await run_agent(make_job(AgentName.WEATHER), CachingLlmClient(llm, cache), tools)
    assert outcome.ok and len(llm.calls) == 2
    # only the corrected answer is stored: a re-run of the job asks the model again
    assert len(cache.entries) == 1
    again = ScriptedLlm(answer(WEATHER_OK))
    await run_agent(make_job(AgentName.WEATHER), CachingLlmClient(again, cache), tools)
    assert len(again.calls) == 1


async def test_tool_calls_off_the_allow_list_are_not_cached(
    make_job: JobFactory, tools: ToolRegistry
) -> None:
    cache = MemoryCache()
    sneaky = LlmResponse(content=None, tool_calls=[ToolCallRequest("c1", "convert_currency", "{}")])
    llm = ScriptedLlm(sneaky, answer(WEATHER_OK))
    await run_agent(make_job(AgentName.WEATHER), CachingLlmClient(llm, cache), tools)
    assert "convert_currency" not in AGENTS[AgentName.WEATHER].allowed_tools
    assert len(llm.calls) == 2 and len(cache.entries) == 1  # the final answer only


async def test_tool_lookups_are_cached_by_validated_arguments() -> None:
    cache = MemoryCache()
    registry = build_tool_registry()
    registry.cache = cache
    first = await registry.execute("distance_km", '{"from_place": "London", "to_place": "Lisbon"}')
    again = await registry.execute("distance_km", {"to_place": "Lisbon", "from_place": "London"})
    assert first.ok and not first.cache_hit
    assert again.ok and again.cache_hit and again.result == first.result
    # answers that depend on the moment are never cached
    now = await registry.execute("local_time", '{"place": "Lisbon"}')
    later = await registry.execute("local_time", '{"place": "Lisbon"}')
    assert now.ok and not later.cache_hit
    fixed = '{"place": "Lisbon", "at": "2027-05-03T12:00:00Z"}'
    await registry.execute("local_time", fixed)
    assert (await registry.execute("local_time", fixed)).cache_hit
    # failures are not cached
    await registry.execute("place_info", '{"place": "Nowhere-at-all-xyz"}')
    assert not (await registry.execute("place_info", '{"place": "Nowhere-at-all-xyz"}')).cache_hit
