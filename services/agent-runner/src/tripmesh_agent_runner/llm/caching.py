"""An LlmClient that answers identical requests from the shared cache.

Identical = same model, api_base, messages, tools, temperature and max_tokens (the key is a
hash of them; the timeout is not part of the request). A hit costs nothing: the response
comes back with `cache_hit=True`, cost 0 and the token counts of the cached answer, and the
engine reports it as one usage event like any other call. Only answers the caller declares
`cacheable` are stored (the engine never caches an answer it rejects, so a retried job
does not get the same invalid answer back), and failed calls never are.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from tripmesh_agent_runner.cache import ResponseCache, cache_key, count_lookup
from tripmesh_agent_runner.llm.base import Cacheable, LlmClient, LlmResponse, ModelPrice, ToolCallRequest


def request_key(
    *,
    model: str,
    api_base: str | None,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    temperature: float | None,
    max_tokens: int,
) -> str:
    return cache_key("llm", {"model": model, "api_base": api_base, "messages": messages, "tools": tools,
                             "temperature": temperature, "max_tokens": max_tokens})  # fmt: skip


def encode(response: LlmResponse) -> bytes:
    return json.dumps({
        "content": response.content,
        "tool_calls": [[c.id, c.name, c.arguments] for c in response.tool_calls],
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "provider": response.provider,
        "model": response.model,
        "finish_reason": response.finish_reason,
    }).encode()  # fmt: skip


def decode(raw: bytes, latency_ms: int) -> LlmResponse | None:
    try:
        data = json.loads(raw)
        return LlmResponse(
            content=data["content"],
            tool_calls=[ToolCallRequest(str(i), str(n), str(a)) for i, n, a in data["tool_calls"]],
            prompt_tokens=int(data["prompt_tokens"]),
            completion_tokens=int(data["completion_tokens"]),
            cost_usd=Decimal(0),
            provider=str(data["provider"]),
            model=str(data["model"]),
            latency_ms=latency_ms,
            cache_hit=True,
            finish_reason=data.get("finish_reason"),
        )
    except (ValueError, KeyError, TypeError):
        return None  # an entry of another format: a miss


class CachingLlmClient:
    def __init__(self, inner: LlmClient, cache: ResponseCache) -> None:
        self.inner = inner
        self.cache = cache

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
        key = request_key(
            model=model,
            api_base=api_base,
            messages=messages,
            tools=tools,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        started = time.perf_counter()
        raw = await self.cache.get(key)
        cached = decode(raw, int((time.perf_counter() - started) * 1000)) if raw else None
        count_lookup("llm", cached is not None)
        if cached is not None:
            return cached
        response = await self.inner.complete(
            model=model, messages=messages, tools=tools, temperature=temperature, max_tokens=max_tokens,
            timeout=timeout, api_base=api_base, fallback_price=fallback_price, call_ref=call_ref,
        )  # fmt: skip
        if cacheable is None or cacheable(response):
            await self.cache.put(key, encode(response))
        return response
