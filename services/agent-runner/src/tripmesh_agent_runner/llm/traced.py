"""An LlmClient that puts each LLM call in a span (OpenTelemetry GenAI semantic conventions).

Wraps the outermost client (cache included: a cache hit is a call that cost nothing, and the
span says so), and only when tracing is on - app.py does not wrap otherwise. The span is a
child of the job's span; the usage event published after the call (usage.py) is its sibling.
Prompt and answer bodies are never recorded.
"""

from __future__ import annotations

from typing import Any

import structlog
from opentelemetry.trace import SpanKind, Status, StatusCode
from tripmesh_kit import telemetry

from tripmesh_agent_runner.llm.base import Cacheable, LlmCallError, LlmClient, LlmResponse, ModelPrice

OPERATION = "chat"


def provider_of(model: str) -> str:
    """`gen_ai.system`: litellm's provider prefix (`openai/gpt-4o-mini` -> openai)."""
    return model.split("/", 1)[0] if "/" in model else "openai"


class TracedLlmClient:
    def __init__(self, inner: LlmClient) -> None:
        self.inner = inner

    async def complete(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        temperature: float | None,
        max_tokens: int,
        timeout: float,
        api_base: str | None,
        fallback_price: ModelPrice | None = None,
        cacheable: Cacheable | None = None,
        call_ref: str | None = None,
    ) -> LlmResponse:
        context = structlog.contextvars.get_contextvars()
        attrs = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.system": provider_of(model),
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": max_tokens,
            "gen_ai.request.temperature": temperature,
            "agent": context.get("agent"),
            "model": model,
            "plan_id": context.get("plan_id"),
            "user_id": context.get("user_id"),
        }
        with telemetry.span(f"{OPERATION} {model}", attrs, kind=SpanKind.CLIENT) as span:
            try:
                response = await self.inner.complete(
                    model=model, messages=messages, tools=tools, temperature=temperature,
                    max_tokens=max_tokens, timeout=timeout, api_base=api_base,
                    fallback_price=fallback_price, cacheable=cacheable, call_ref=call_ref,
                )  # fmt: skip
            except LlmCallError as exc:
                if span is not None:
                    span.set_attribute("error.type", str(exc.status_code or type(exc).__name__))
                    span.set_status(Status(StatusCode.ERROR, "LLM call failed"))
                raise
            if span is not None:
                span.set_attributes(
                    telemetry.attributes(
                        {
                            "gen_ai.response.model": response.model or model,
                            "gen_ai.usage.input_tokens": response.prompt_tokens,
                            "gen_ai.usage.output_tokens": response.completion_tokens,
                            "tripmesh.cost_usd": response.cost_usd,
                            "tripmesh.cost_estimated": response.cost_estimated,
                            "tripmesh.cache_hit": response.cache_hit,
                        }
                    )
                )
                if response.finish_reason:
                    span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
            return response
