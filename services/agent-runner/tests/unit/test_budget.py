"""The amount reserved before an LLM call (budget.py): pure computation, no ledger."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from tripmesh_agent_runner.budget import PriceBook, estimate_prompt_tokens, max_call_cost
from tripmesh_agent_runner.domain import Delivery, reservation_id, usage_id
from tripmesh_agent_runner.llm.base import LOCAL_MODEL, ModelPrice
from tripmesh_agent_runner.settings import AgentConfig, Settings
from tripmesh_contracts.plans import AgentName

MESSAGES = [
    {"role": "system", "content": "agent: weather\nYou forecast the weather of a trip."},
    {"role": "user", "content": "<trip>Lisbon and Porto, 2027-05-03..2027-05-07</trip>"},
]
TOOLS = [{"type": "function", "function": {"name": "climate_estimate", "parameters": {"type": "object"}}}]


class FakeLitellm:
    """litellm's `cost_per_token` for one known model (per-token USD, as floats like litellm)."""

    def __init__(self) -> None:
        self.lookups = 0

    def cost_per_token(
        self, *, model: str, prompt_tokens: int, completion_tokens: int
    ) -> tuple[float, float]:
        self.lookups += 1
        if model != "openai/known":
            raise ValueError("This model isn't mapped yet")
        return prompt_tokens * 0.0000025, completion_tokens * 0.000015000000000000001


def test_prompt_estimate_is_one_token_per_three_characters_of_the_request_json() -> None:
    chars = len(json.dumps(MESSAGES)) + len(json.dumps(TOOLS))
    assert estimate_prompt_tokens(MESSAGES, TOOLS) == math.ceil(chars / 3)
    assert estimate_prompt_tokens(MESSAGES, None) == math.ceil(len(json.dumps(MESSAGES)) / 3)


def test_prompt_estimate_stays_above_what_the_local_model_reports() -> None:
    """The local stand-in reports ~4 characters of content per token (local_model.py)."""
    from tripmesh_agent_runner.llm.local_model import _prompt_text, _tokens

    reported = _tokens(_prompt_text(MESSAGES, {"tools": TOOLS}))
    assert estimate_prompt_tokens(MESSAGES, TOOLS) > reported


def test_non_ascii_text_counts_as_two_tokens_per_character() -> None:
    """Escaped as \\uXXXX (6 characters): CJK text, about one token per character in BPE
    tokenizers, is not under-estimated."""
    tokyo = [{"role": "user", "content": "東京" * 30}]
    assert estimate_prompt_tokens(tokyo, None) >= 60


def test_max_call_cost_is_input_price_times_prompt_plus_output_price_times_max_tokens() -> None:
    price = ModelPrice(Decimal("0.0025"), Decimal("0.015"))
    assert max_call_cost(price, 2000, 4096) == Decimal("0.0025") * 2 + Decimal("0.015") * Decimal("4.096")
    assert max_call_cost(ModelPrice(Decimal(0), Decimal(0)), 2000, 4096) == 0


def test_max_call_cost_rounds_up_to_the_ledgers_eight_decimals() -> None:
    tiny = ModelPrice(Decimal("0.000001"), Decimal(0))  # 1e-9 USD per token
    assert max_call_cost(tiny, 1, 0) == Decimal("0.00000001")
    assert max_call_cost(tiny, 10, 0) == Decimal("0.00000001")
    assert max_call_cost(tiny, 11, 0) == Decimal("0.00000002")


def test_price_book_local_model_litellm_map_then_fallback() -> None:
    fake = FakeLitellm()
    local = ModelPrice(Decimal("0.001"), Decimal("0.002"))
    fallback = ModelPrice(Decimal("0.005"), Decimal("0.015"))
    book = PriceBook(local, litellm=lambda: fake)
    assert book.price(LOCAL_MODEL, fallback) == local
    assert fake.lookups == 0  # the local stand-in is never looked up
    known = book.price("openai/known", fallback)
    assert known == ModelPrice(Decimal("0.0025"), Decimal("0.015"))  # float noise rounded away
    assert book.price("openai/stub", fallback) == fallback
    lookups = fake.lookups
    book.price("openai/known", fallback), book.price("openai/stub", fallback)
    assert fake.lookups == lookups  # once per model: a lookup can take ~70 ms


def test_price_book_reads_litellms_bundled_price_map() -> None:
    book = PriceBook(ModelPrice(Decimal(0), Decimal(0)))
    fallback = ModelPrice(Decimal(99), Decimal(99))
    gpt5 = book.price("gpt-5", fallback)
    assert gpt5 != fallback and gpt5.input_per_1k > 0 and gpt5.output_per_1k > gpt5.input_per_1k
    assert book.price("openai/tripmesh-not-a-model", fallback) == fallback


def test_reservation_ids_are_stable_per_call_and_new_per_delivery() -> None:
    first, again, redelivered = Delivery(7, 1), Delivery(7, 1), Delivery(7, 2)
    assert reservation_id("job", first, 1) == reservation_id("job", again, 1)
    ids = [reservation_id("job", d, i) for d, i in ((first, 1), (first, 2), (redelivered, 1))]
    assert len(set(ids)) == 3
    assert reservation_id("job", first, 1) != usage_id("job", first, 1)


@pytest.mark.parametrize(("override", "expected"), [(None, 60.0 * 3 + 60), (120.0, 120.0)])
def test_reservation_ttl(override: float | None, expected: float) -> None:
    settings = Settings(reservation_ttl_seconds=override, default_timeout_seconds=60, default_num_retries=2)
    config: AgentConfig = settings.agent_config(AgentName.WEATHER)
    assert settings.reservation_ttl(config) == expected


def test_reservation_ttl_stays_within_what_the_ledger_accepts() -> None:
    settings = Settings(default_timeout_seconds=600, default_num_retries=10)
    assert settings.reservation_ttl(settings.agent_config(AgentName.PLANNING)) == 3600
