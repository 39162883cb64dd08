"""One LLM request of an agent run, with its retries: the retry owner of the LLM hop.

Why here and not in litellm (`num_retries`): litellm's retries (and the OpenAI SDK's, which
litellm drives with the same number) are invisible to the caller - a request that failed
twice and then succeeded comes back as one ordinary response - so the two failed attempts,
which a provider may well bill or count against a rate limit, would never become usage
events. So the client makes exactly one attempt per call (num_retries=0, max_retries=0) and
this loop retries transient failures (429, 5xx, timeouts, connection errors) up to the
agent's `num_retries`, with a jittered exponential backoff or the provider's Retry-After.
Every attempt - success, failure or retry - goes to the observer as one `LlmCallRecord`, so
one usage event with an id of its own. JetStream's redelivery of a whole job is the next hop
up, and it has its own owner (max_deliver).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from tripmesh_contracts import AgentJob

from tripmesh_agent_runner.agents.outcome import AgentOutcome, LlmCallRecord
from tripmesh_agent_runner.llm.base import (
    Cacheable,
    CallConfig,
    LlmCallError,
    LlmClient,
    LlmResponse,
    ModelPrice,
)


class BudgetExhausted(Exception):
    """Raised by a CallObserver before a call the plan's LLM budget cannot cover."""


class CallObserver(Protocol):
    """Hooks around each LLM call attempt: reserve budget before (may raise BudgetExhausted,
    or an infrastructure error that fails the job's delivery), emit the usage event and
    settle after. Failed attempts are reported too. `call_index` is the attempt's number in
    the run (the `LlmCallRecord.call_index` that `after_llm_call` receives); `messages` and
    `tools` are exactly what the call sends (read only: they size the reservation).
    `before_llm_call` returns the call's reference (its reservation id), sent with the call."""

    async def before_llm_call(
        self,
        *,
        job: AgentJob,
        model: str,
        turn: int,
        attempt: int,
        max_tokens: int,
        call_index: int,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
    ) -> str | None: ...

    async def after_llm_call(self, *, job: AgentJob, record: LlmCallRecord) -> None: ...


def backoff_delay(retry: int, config: CallConfig, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before retry number `retry` (1-based): the provider's Retry-After when it gave
    one (never beyond the cap), else base * 2^(retry-1), jittered to [50%, 100%]."""
    cap = config.retry_backoff_max_seconds
    if retry_after is not None:
        return min(retry_after, cap)
    ceiling = min(cap, config.retry_backoff_seconds * 2 ** (retry - 1))
    return rng.uniform(ceiling / 2, ceiling)


@dataclass
class LlmCalls:
    """The LLM calls of one agent run."""

    job: AgentJob
    llm: LlmClient
    config: CallConfig
    outcome: AgentOutcome
    observer: CallObserver | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    made: int = 0
    """Attempts so far in this run (numbers the usage events)."""

    async def request(
        self,
        *,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        turn: int,
        answer_attempt: int,
        cacheable: Cacheable,
    ) -> LlmResponse:
        """The model's answer to `messages`. Raises BudgetExhausted (from the observer) or the
        last attempt's LlmCallError once retries are spent or the failure is not transient."""
        config = self.config
        fallback_price = ModelPrice(config.input_price_per_1k, config.output_price_per_1k)
        attempt = 0
        while True:
            attempt += 1
            call_ref = None
            if self.observer is not None:
                call_ref = await self.observer.before_llm_call(
                    job=self.job, model=config.model, turn=turn, attempt=attempt,
                    max_tokens=config.max_tokens, call_index=self.made + 1, messages=messages, tools=tools,
                )  # fmt: skip
            self.made += 1
            try:
                response = await self.llm.complete(
                    model=config.model, messages=messages, tools=tools, temperature=config.temperature,
                    max_tokens=config.max_tokens, timeout=config.timeout_seconds,
                    api_base=config.api_base, fallback_price=fallback_price, cacheable=cacheable,
                    call_ref=call_ref,
                )  # fmt: skip
            except LlmCallError as exc:
                await self._record(LlmCallRecord(
                    model=config.model, provider=exc.provider, prompt_tokens=0, completion_tokens=0,
                    cost_usd=Decimal(0), latency_ms=exc.latency_ms, turn=turn, attempt=attempt,
                    call_index=self.made, answer_attempt=answer_attempt, success=False,
                    error=str(exc)[:500],
                ))  # fmt: skip
                if not exc.transient or attempt > config.num_retries:
                    raise
                await self.sleep(backoff_delay(attempt, config, exc.retry_after, self.rng))
                continue
            await self._record(LlmCallRecord(
                model=config.model, provider=response.provider, prompt_tokens=response.prompt_tokens,
                completion_tokens=response.completion_tokens, cost_usd=response.cost_usd,
                latency_ms=response.latency_ms, turn=turn, attempt=attempt, call_index=self.made,
                answer_attempt=answer_attempt, cost_estimated=response.cost_estimated,
                cache_hit=response.cache_hit,
            ))  # fmt: skip
            return response

    async def _record(self, record: LlmCallRecord) -> None:
        self.outcome.llm_calls.append(record)
        if self.observer is not None:
            await self.observer.after_llm_call(job=self.job, record=record)
