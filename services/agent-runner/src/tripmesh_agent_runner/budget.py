"""Budget enforcement around each LLM call (ARCHITECTURE.md §5): reserve the call's maximum
cost in the ledger before it runs, settle its actual cost after.

The maximum of one call is `input price x estimated prompt tokens + output price x
max_tokens`, rounded *up* to the ledger's 8 decimals:
- prompt tokens are over-estimated as one token per 3 characters of the request's JSON
  (messages and tool schemas, non-ASCII escaped as `\\uXXXX`, i.e. 2 tokens per such
  character): cheap (no tokenizer on the hot path) and above what BPE tokenizers count for
  such text (~4 characters per token in English JSON);
- prices: the local stand-in's configured price; any other model litellm's cost map (looked
  up once per model: a lookup costs up to ~70 ms), else the agent's fallback price - the
  same order LitellmClient prices the call with afterwards.

A reservation id is deterministic per (job, stream sequence, delivery, call index): the
reserve RPC retried within one delivery gets the ledger's first decision back; a redelivered
job makes new reservations, because it makes new calls the provider bills again.

Retry owners for a reserve: the LedgerClient retries one request briefly (stamina); above it,
`Reserver` keeps asking with the same id while the ledger cannot decide, up to
`outage_wait_seconds`, with the job held by in-progress acks (kit.consume). Only then does the
delivery fail and JetStream redeliver it. A ledger outage so pauses the job instead of using
up its deliveries: the calls already made in this delivery are not made again, and the job is
not dead-lettered because Postgres was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from prometheus_client import Counter
from tripmesh_contracts.messages import AgentJob
from tripmesh_contracts.rpc import ReserveReply, ReserveRequest, SettleRequest
from tripmesh_kit import metrics as kit_metrics
from tripmesh_kit.consume import run_through_outage
from tripmesh_kit.logging import get_logger

from tripmesh_agent_runner.agents.llm_calls import BudgetExhausted
from tripmesh_agent_runner.domain import Delivery, reservation_id
from tripmesh_agent_runner.ledger_client import LedgerClient, LedgerUnavailable
from tripmesh_agent_runner.llm.base import LOCAL_PROVIDER, ModelPrice
from tripmesh_agent_runner.llm.litellm_import import load_litellm

log = get_logger(__name__)

CHARS_PER_TOKEN_ESTIMATE = 3
OUTAGE_RETRY_MAX_SECONDS = 10.0
"""The longest pause between two reserve attempts while the ledger cannot decide."""
LEDGER_QUANTUM = Decimal("0.00000001")
"""The ledger keeps USD as numeric(18, 8)."""
PRICE_DIGITS = 12
"""litellm's per-token floats (0.015000000000000001 per 1k) are rounded to this many places."""

RESERVATIONS = Counter(
    "tripmesh_llm_reservations",
    "Ledger reservations asked before LLM calls, by agent and outcome (granted, denied, unavailable)",
    ["agent", "outcome"],
)
SETTLE_FAILURES = Counter(
    "tripmesh_llm_settle_failures", "Settlements the ledger did not take (left to expiry)", ["agent"]
)


def estimate_prompt_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
    chars = len(json.dumps(messages, default=str)) + (len(json.dumps(tools, default=str)) if tools else 0)
    return math.ceil(chars / CHARS_PER_TOKEN_ESTIMATE)


def max_call_cost(price: ModelPrice, prompt_tokens: int, max_tokens: int) -> Decimal:
    """The most one call can cost, rounded up to the ledger's precision (never below it)."""
    return price.cost(prompt_tokens, max_tokens).quantize(LEDGER_QUANTUM, rounding=ROUND_CEILING)


def _per_1k(value: Any) -> Decimal:
    return (Decimal(str(value)) * 1000).quantize(Decimal(1).scaleb(-PRICE_DIGITS)).normalize()


class PriceBook:
    """Per-model prices: the local stand-in's, litellm's cost map's, or None (unknown)."""

    def __init__(self, local_price: ModelPrice, litellm: Callable[[], Any] = load_litellm) -> None:
        self.local_price = local_price
        self._litellm = litellm
        self._known: dict[str, ModelPrice | None] = {}

    def price(self, model: str, fallback: ModelPrice) -> ModelPrice:
        if model.startswith(LOCAL_PROVIDER + "/"):
            return self.local_price
        if model not in self._known:
            self._known[model] = self._lookup(model)
        return self._known[model] or fallback

    def _lookup(self, model: str) -> ModelPrice | None:
        litellm = self._litellm()
        try:
            prompt, _ = litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=0)
            _, completion = litellm.cost_per_token(model=model, prompt_tokens=0, completion_tokens=1)
        except Exception:
            return None  # not in the map: the agent's fallback price
        return ModelPrice(_per_1k(prompt), _per_1k(completion))


@dataclass
class Reserver:
    """Reserves and settles the calls of one delivery of one job."""

    ledger: LedgerClient
    prices: PriceBook
    fallback_price: ModelPrice
    ttl_seconds: float
    delivery: Delivery
    held: dict[int, str] = field(default_factory=dict)
    """call index -> reservation id, from the reserve until the settle."""
    outage_wait_seconds: float = 0.0
    """How long to keep asking a ledger that cannot decide (0: fail the delivery at once)."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic

    async def reserve(
        self,
        *,
        job: AgentJob,
        model: str,
        call_index: int,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        max_tokens: int,
    ) -> str:
        """Hold the call's maximum; its reservation id. Raises BudgetExhausted when the ledger
        says no, LedgerUnavailable when it could not decide (the job is redelivered later)."""
        price = self.prices.price(model, self.fallback_price)
        amount = max_call_cost(price, estimate_prompt_tokens(messages, tools), max_tokens)
        rid = reservation_id(job.id, self.delivery, call_index)
        request = ReserveRequest(
            reservation_id=rid, user_id=job.user_id, plan_id=job.plan_id, plan_cap_usd=job.llm_cap_usd,
            amount_usd=amount, agent=job.agent.value, model=model, ttl_seconds=self.ttl_seconds,
        )  # fmt: skip
        try:
            reply = await self._ask_through_outage(job, request)
        except LedgerUnavailable as exc:
            if exc.reason == "timeout":
                # the ledger may have granted it with the reply lost: release it if it hears us
                # now, else it expires (charged as an estimate, marked so)
                await self._release_quietly(job, rid)
            raise
        if not reply.granted:
            RESERVATIONS.labels(agent=job.agent.value, outcome="denied").inc()
            kit_metrics.BUDGET_REFUSALS.labels(where="runner").inc()
            log.info("llm_call_denied_by_budget", reason=reply.reason, amount_usd=str(amount), model=model)
            raise BudgetExhausted(reply.reason or "budget_exhausted")
        RESERVATIONS.labels(agent=job.agent.value, outcome="granted").inc()
        self.held[call_index] = rid
        return rid

    async def _ask_through_outage(self, job: AgentJob, request: ReserveRequest) -> ReserveReply:
        """The ledger's decision, asked again (same reservation id, so a grant whose reply was
        lost comes back as that grant) while it cannot decide, for up to outage_wait_seconds."""

        async def ask() -> ReserveReply:
            try:
                return await self.ledger.reserve(request)
            except LedgerUnavailable:
                RESERVATIONS.labels(agent=job.agent.value, outcome="unavailable").inc()
                raise

        def held(exc: BaseException, waited: float, delay: float) -> None:
            log.warning(
                "ledger_unavailable_job_held", error=str(exc)[:200], waited_s=round(waited, 1), retry_in=delay
            )

        return await run_through_outage(
            ask,
            lambda exc: isinstance(exc, LedgerUnavailable) and exc.retryable,
            first_delay=1.0,
            max_wait=OUTAGE_RETRY_MAX_SECONDS,
            give_up_after=self.outage_wait_seconds,
            on_retry=held,
            sleep=self.sleep,
            clock=self.clock,
        )

    def reservation_of(self, call_index: int) -> str | None:
        return self.held.get(call_index)

    async def settle(
        self, *, job: AgentJob, call_index: int, actual_usd: Decimal, usage_event_id: str
    ) -> None:
        """Replace the held maximum by the actual cost. A settle that fails is logged and left:
        the usage event (already on the USAGE stream, carrying the reservation id) marks the
        reservation accounted when the ledger ingests it; and if that were lost too, the
        reservation expires and is charged at its maximum - never less than the call cost.
        Never a reason to redeliver the job: that would make (and pay for) the calls again."""
        rid = self.held.pop(call_index, None)
        if rid is None:
            return
        request = SettleRequest(
            reservation_id=rid, user_id=job.user_id, actual_usd=actual_usd, usage_event_id=usage_event_id
        )
        try:
            await self.ledger.settle(request)
        except LedgerUnavailable as exc:
            SETTLE_FAILURES.labels(agent=job.agent.value).inc()
            log.warning("settle_failed_left_to_expiry", reservation_id=rid, error=str(exc)[:200])

    async def _release_quietly(self, job: AgentJob, rid: str) -> None:
        release = SettleRequest(reservation_id=rid, user_id=job.user_id, actual_usd=Decimal(0))
        with contextlib.suppress(LedgerUnavailable):
            await self.ledger.settle(release, attempts=1)
