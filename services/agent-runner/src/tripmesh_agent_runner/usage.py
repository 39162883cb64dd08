"""One record per LLM call, whatever the engine does: a recording wrapper over `LlmClient`.

The engine calls `complete()` as often as its tool loop needs; every call that reached
litellm - answered or failed after litellm's own retries - becomes one `LlmCall` here, in call
order, and later one `UsageEvent` (handlers.py). Wrapping the client rather than reading the
engine's outcome means a call is recorded even when the engine raises halfway through a job.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from prometheus_client import Counter

from tripmesh_agent_runner.domain import LlmCall
from tripmesh_agent_runner.llm.base import LlmCallError, LlmClient, LlmResponse, ModelPrice

LLM_CALLS = Counter(
    "tripmesh_llm_calls_total", "LLM calls by agent, model and outcome (ok, error, cache_hit)",
    ["agent", "model", "outcome"],
)
LLM_TOKENS = Counter(
    "tripmesh_llm_tokens_total", "LLM tokens by agent, model and kind (prompt, completion)",
    ["agent", "model", "kind"],
)
LLM_COST = Counter("tripmesh_llm_cost_usd_total", "LLM cost in USD by agent and model", ["agent", "model"])
LLM_COST_ESTIMATED = Counter(
    "tripmesh_llm_cost_estimated_total",
    "LLM calls priced from a fallback price (model missing from litellm's price map)",
    ["agent", "model"],
)


class RecordingLlmClient:
    """Delegates to `inner` and keeps one `LlmCall` per call, for one job run."""

    def __init__(self, inner: LlmClient, agent: str) -> None:
        self.inner = inner
        self.agent = agent
        self.calls: list[LlmCall] = []

    async def complete(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        temperature: float | None,
        max_tokens: int,
        timeout: float,
        num_retries: int,
        api_base: str | None,
        fallback_price: ModelPrice | None = None,
    ) -> LlmResponse:
        try:
            response = await self.inner.complete(
                model=model, messages=messages, tools=tools, temperature=temperature,
                max_tokens=max_tokens, timeout=timeout, num_retries=num_retries,
                api_base=api_base, fallback_price=fallback_price,
            )
        except LlmCallError as exc:
            self._record(LlmCall(model=model, provider=exc.provider, prompt_tokens=0,
                                 completion_tokens=0, latency_ms=exc.latency_ms, success=False,
                                 cost_usd=Decimal(0), error=str(exc)[:1000]))
            raise
        self._record(
            LlmCall(
                model=response.model or model,
                provider=response.provider,
                prompt_tokens=response.prompt_tokens,
                completion_tokens=response.completion_tokens,
                latency_ms=response.latency_ms,
                success=True,
                cost_usd=response.cost_usd,
                cache_hit=response.cache_hit,
            ),
            estimated=response.cost_estimated,
        )
        return response

    def _record(self, call: LlmCall, *, estimated: bool = False) -> None:
        self.calls.append(call)
        outcome = "error" if not call.success else ("cache_hit" if call.cache_hit else "ok")
        LLM_CALLS.labels(agent=self.agent, model=call.model, outcome=outcome).inc()
        LLM_TOKENS.labels(agent=self.agent, model=call.model, kind="prompt").inc(call.prompt_tokens)
        LLM_TOKENS.labels(agent=self.agent, model=call.model, kind="completion").inc(
            call.completion_tokens)
        LLM_COST.labels(agent=self.agent, model=call.model).inc(float(call.cost_usd))
        if estimated:
            LLM_COST_ESTIMATED.labels(agent=self.agent, model=call.model).inc()
