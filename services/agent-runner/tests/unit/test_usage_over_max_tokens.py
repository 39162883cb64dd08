"""A provider that reports more completion tokens than the call allowed is not believed
(issue #12, test 9: the adversarial model).

Before: a reply claiming 1e9 completion tokens for a call capped at 100 was recorded and
priced as such ($2,000 at $0.002/1k) and settled at the ledger, far past the call's
reservation and the user's cap. Now the tokens are clamped to the call's max_tokens (no
provider can bill more), the cost is priced from the clamped figures and marked estimated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from aiohttp import web
from tripmesh_agent_runner.llm.base import ModelPrice
from tripmesh_agent_runner.llm.litellm_client import LitellmClient

PRICE = ModelPrice(Decimal("0.001"), Decimal("0.002"))
ABSURD = 1_000_000_000


@pytest.fixture
async def lying_provider() -> AsyncIterator[str]:
    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 40, "completion_tokens": ABSURD, "total_tokens": ABSURD + 40},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_completion_tokens_above_max_tokens_are_clamped(
    lying_provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    response = await LitellmClient(local_price=PRICE).complete(
        model="openai/not-in-any-price-map",
        messages=[{"role": "user", "content": "hi"}],
        tools=None,
        temperature=None,
        max_tokens=100,
        timeout=10,
        api_base=lying_provider,
        fallback_price=PRICE,
    )
    assert response.completion_tokens == 100
    assert response.cost_usd == PRICE.cost(response.prompt_tokens, 100)
    assert response.cost_estimated
