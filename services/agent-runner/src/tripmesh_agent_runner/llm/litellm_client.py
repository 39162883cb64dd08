"""LlmClient over litellm: any provider by model string, cost from litellm's price map."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from tripmesh_kit.logging import get_logger

from tripmesh_agent_runner.llm.base import (
    CONSERVATIVE_PRICE,
    FREE,
    LOCAL_PROVIDER,
    Cacheable,
    LlmCallError,
    LlmResponse,
    ModelPrice,
    ToolCallRequest,
)
from tripmesh_agent_runner.llm.litellm_import import load_litellm

# litellm exception class names worth trying again (by the engine's retry loop).
_TRANSIENT_ERRORS = frozenset(
    {"Timeout", "RateLimitError", "APIConnectionError", "ServiceUnavailableError", "InternalServerError",
     "APIError"}
)  # fmt: skip
_TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 600.0

log = get_logger(__name__)


def _retry_after(exc: Exception) -> float | None:
    """A 429's Retry-After, in seconds (litellm keeps the provider's response headers)."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: rare for LLM APIs; the engine's backoff applies
    return None if seconds is None or seconds < 0 else min(seconds, MAX_RETRY_AFTER_SECONDS)


def call_error(exc: Exception, model: str, latency_ms: int) -> LlmCallError:
    status = getattr(exc, "status_code", None)
    status_code = status if isinstance(status, int) else None
    transient = type(exc).__name__ in _TRANSIENT_ERRORS or status_code in _TRANSIENT_STATUS
    return LlmCallError(
        f"{type(exc).__name__}: {exc}",
        provider=model.split("/", 1)[0] if "/" in model else "unknown",
        latency_ms=latency_ms,
        transient=transient,
        retry_after=_retry_after(exc),
        status_code=status_code,
    )


DEFAULT_CALL_REF_HEADER = "X-Tripmesh-Reservation-Id"


class LitellmClient:
    """`complete()` through `litellm.acompletion`: exactly one HTTP attempt per call.

    Retries: litellm's `num_retries` and the OpenAI SDK's `max_retries` (litellm turns
    num_retries into max_retries, and the SDK retries twice by default) are both forced to
    0. Their retries are invisible from here - a call that failed twice and then succeeded
    returns one ordinary response - so those attempts would never become usage events. The
    engine owns the retry loop instead (agents/llm_calls.py), one usage event per attempt.

    Cost of a call: the local stand-in costs `local_price` (0 unless priced in settings); any
    other model is priced by litellm's cost map, else by the caller's fallback price, else by
    CONSERVATIVE_PRICE — the last two flagged `cost_estimated`, never silently 0.

    Reconciliation: a call's `call_ref` (its ledger reservation id) is sent as the
    `call_ref_header` request header (None: not sent). A provider's request log or an
    OpenAI-compatible proxy can then name, per billed call, the reservation the ledger holds
    for it: settled by its usage event, or charged at its maximum when the runner died
    between the answer and the usage event.
    """

    def __init__(
        self,
        *,
        register_local_model: bool = True,
        local_price: ModelPrice | None = None,
        local_latency_seconds: float = 0.0,
        call_ref_header: str | None = DEFAULT_CALL_REF_HEADER,
    ) -> None:
        self._litellm: Any = None
        self.call_ref_header = call_ref_header
        self._register_local_model = register_local_model
        self.local_price = local_price or FREE
        self.local_latency_seconds = local_latency_seconds

    @property
    def litellm(self) -> Any:
        if self._litellm is None:
            self._litellm = load_litellm()
            if self._register_local_model:
                from tripmesh_agent_runner.llm.local_model import register_local_model

                register_local_model(latency_seconds=self.local_latency_seconds)
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
        hidden = getattr(response, "_hidden_params", None) or {}
        if "response_cost" in hidden:
            # litellm priced the call already (its price map, same as completion_cost); None
            # means the map does not know the model. Not pricing twice saves ~1 ms per call.
            known = hidden["response_cost"]
            if known is not None:
                return Decimal(str(known)), False
            return (fallback or CONSERVATIVE_PRICE).cost(*usage), True
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
        api_base: str | None,
        fallback_price: ModelPrice | None = None,
        cacheable: Cacheable | None = None,
        call_ref: str | None = None,
    ) -> LlmResponse:
        litellm = self.litellm
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "timeout": timeout,
            # one attempt: the engine owns retries (see the class docstring)
            "num_retries": 0,
            "max_retries": 0,
        }
        if tools:
            kwargs["tools"] = tools
        if temperature is not None:
            kwargs["temperature"] = temperature
        if api_base:
            kwargs["api_base"] = api_base
        if call_ref and self.call_ref_header:
            kwargs["extra_headers"] = {self.call_ref_header: call_ref}
        started = time.perf_counter()
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            raise call_error(exc, model, int((time.perf_counter() - started) * 1000)) from exc
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
        if tokens[1] > max_tokens:
            # No provider can bill more than the call allowed: a reply claiming so (a broken
            # or hostile endpoint) is priced at the cap, as an estimate, never as reported.
            log.warning("llm_usage_over_max_tokens", model=model, reported=tokens[1], max_tokens=max_tokens)
            tokens = (tokens[0], max_tokens)
            cost, estimated = (fallback_price or CONSERVATIVE_PRICE).cost(*tokens), True
        else:
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
