"""LlmClient over litellm: any provider by model string, cost from litellm's price map."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from tripmesh_agent_runner.llm.base import (
    CONSERVATIVE_PRICE,
    FREE,
    LOCAL_PROVIDER,
    LlmCallError,
    LlmResponse,
    ModelPrice,
    ToolCallRequest,
)
from tripmesh_agent_runner.llm.litellm_import import load_litellm

# litellm exception class names worth a later redelivery (the call itself was already retried
# num_retries times by litellm).
_TRANSIENT_ERRORS = frozenset(
    {"Timeout", "RateLimitError", "APIConnectionError", "ServiceUnavailableError", "InternalServerError",
     "APIError"}
)  # fmt: skip


class LitellmClient:
    """`complete()` through `litellm.acompletion`.

    Cost of a call: the local stand-in costs `local_price` (0 unless priced in settings); any
    other model is priced by litellm's cost map, else by the caller's fallback price, else by
    CONSERVATIVE_PRICE — the last two flagged `cost_estimated`, never silently 0.
    """

    def __init__(self, *, register_local_model: bool = True, local_price: ModelPrice | None = None) -> None:
        self._litellm: Any = None
        self._register_local_model = register_local_model
        self.local_price = local_price or FREE

    @property
    def litellm(self) -> Any:
        if self._litellm is None:
            self._litellm = load_litellm()
            if self._register_local_model:
                from tripmesh_agent_runner.llm.local_model import register_local_model

                register_local_model()
        return self._litellm

    def _provider(self, response: Any, model: str) -> str:
        hidden = getattr(response, "_hidden_params", None) or {}
        provider = hidden.get("custom_llm_provider")
        if provider:
            return str(provider)
        try:
            return str(self.litellm.get_llm_provider(model)[1])
        except Exception:
            return model.split("/", 1)[0] if "/" in model else "unknown"

    def _cost(
        self, response: Any, model: str, provider: str, usage: tuple[int, int], fallback: ModelPrice | None
    ) -> tuple[Decimal, bool]:
        if provider == LOCAL_PROVIDER:
            return self.local_price.cost(*usage), False
        try:
            value = self.litellm.completion_cost(completion_response=response, model=model)
            return Decimal(str(value)), False
        except Exception:
            return (fallback or CONSERVATIVE_PRICE).cost(*usage), True

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
        litellm = self.litellm
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "timeout": timeout,
            "num_retries": num_retries,
        }
        if tools:
            kwargs["tools"] = tools
        if temperature is not None:
            kwargs["temperature"] = temperature
        if api_base:
            kwargs["api_base"] = api_base
        started = time.perf_counter()
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            latency = int((time.perf_counter() - started) * 1000)
            provider = model.split("/", 1)[0] if "/" in model else "unknown"
            raise LlmCallError(
                f"{type(exc).__name__}: {exc}",
                provider=provider,
                latency_ms=latency,
                transient=type(exc).__name__ in _TRANSIENT_ERRORS,
            ) from exc
        latency = int((time.perf_counter() - started) * 1000)
        choice = response.choices[0]
        message = choice.message
        tool_calls = [
            ToolCallRequest(
                id=str(call.id), name=str(call.function.name), arguments=call.function.arguments or ""
            )
            for call in (getattr(message, "tool_calls", None) or [])
        ]
        usage = getattr(response, "usage", None)
        tokens = (
            int(getattr(usage, "prompt_tokens", 0) or 0),
            int(getattr(usage, "completion_tokens", 0) or 0),
        )
        provider = self._provider(response, model)
        cost, estimated = self._cost(response, model, provider, tokens, fallback_price)
        hidden = getattr(response, "_hidden_params", None) or {}
        return LlmResponse(
            content=message.content,
            tool_calls=tool_calls,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            cost_usd=cost,
            cost_estimated=estimated,
            provider=provider,
            model=model,
            latency_ms=latency,
            cache_hit=bool(hidden.get("cache_hit")),
            finish_reason=getattr(choice, "finish_reason", None),
        )
