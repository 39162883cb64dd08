"""LitellmClient: the local model through litellm, cost accounting and error mapping."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from tripmesh_agent_runner.llm.base import CONSERVATIVE_PRICE, LOCAL_MODEL, LlmCallError, ModelPrice
from tripmesh_agent_runner.llm.litellm_client import LitellmClient

PRICE = ModelPrice(Decimal("0.001"), Decimal("0.002"))


async def complete(
    client: LitellmClient, content: str, model: str = LOCAL_MODEL
) -> tuple[str | None, Decimal]:
    response = await client.complete(
        model=model,
        messages=[{"role": "system", "content": "agent: nobody"}, {"role": "user", "content": content}],
        tools=None,
        temperature=0.0,
        max_tokens=100,
        timeout=10,
        api_base=None,
    )
    assert response.provider == "tripmesh-local" and not response.cost_estimated
    assert response.prompt_tokens >= len(content) // 4 and response.completion_tokens > 0
    return response.content, response.cost_usd


async def test_local_model_is_free_unless_priced(llm: LitellmClient) -> None:
    content, cost = await complete(llm, "hello " * 100)
    assert cost == 0
    assert "agent" in json.loads(content or "{}")["error"]
    _, priced = await complete(LitellmClient(local_price=PRICE), "hello " * 100)
    assert priced > 0


def test_known_models_are_priced_by_litellm(llm: LitellmClient) -> None:
    response = llm.litellm.ModelResponse(
        model="gpt-4o-mini",
        choices=[{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
        usage=llm.litellm.Usage(prompt_tokens=1000, completion_tokens=1000, total_tokens=2000),
    )
    cost, estimated = llm._cost(response, "gpt-4o-mini", "openai", (1000, 1000), PRICE)
    assert not estimated and Decimal("0.0001") < cost < Decimal("0.01")


def test_unknown_models_use_the_fallback_never_zero(llm: LitellmClient) -> None:
    response = llm.litellm.ModelResponse(
        model="my-private-model",
        choices=[{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
        usage=llm.litellm.Usage(prompt_tokens=1000, completion_tokens=1000, total_tokens=2000),
    )
    model = "hosted_vllm/my-private-model"
    assert llm._cost(response, model, "hosted_vllm", (1000, 1000), PRICE) == (Decimal("0.003"), True)
    cost, estimated = llm._cost(response, model, "hosted_vllm", (1000, 1000), None)
    assert estimated and cost == CONSERVATIVE_PRICE.cost(1000, 1000) > 0


async def test_an_unreachable_provider_is_a_transient_llm_error(
    llm: LitellmClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    with pytest.raises(LlmCallError) as caught:
        await llm.complete(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            tools=None,
            temperature=None,
            max_tokens=10,
            timeout=5,
            api_base="http://127.0.0.1:9/v1",
        )
    assert caught.value.transient and caught.value.provider == "openai"


def test_the_local_model_answers_synchronous_completion_too(llm: LitellmClient) -> None:
    from tripmesh_agent_runner.llm.local_model import register_local_model

    assert register_local_model() == LOCAL_MODEL == register_local_model()  # idempotent
    providers = [item["provider"] for item in llm.litellm.custom_provider_map]
    assert providers.count("tripmesh-local") == 1
    response = llm.litellm.completion(
        model=LOCAL_MODEL,
        messages=[{"role": "system", "content": "agent: nobody"}, {"role": "user", "content": "x"}],
    )
    assert "error" in json.loads(response.choices[0].message.content)
