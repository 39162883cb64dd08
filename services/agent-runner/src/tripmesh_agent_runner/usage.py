"""Usage events as the LLM calls happen: the engine's `CallObserver`, one per job run.

Each call's `UsageEvent` is published right after the call returns (or fails), not at the end
of the job: if the runner dies at the third call of a job, the two calls before it - which
the provider has billed - are already on the USAGE stream. A publish that still fails after
the Bus's retries raises `UsagePublishError`, which fails the message (nak), never the agent.

Budgets (ARCHITECTURE.md §5, budget.py): before each call its maximum cost is reserved in
the ledger; after it, the usage event carries the reservation id and the actual cost settles
the reservation.

The settle runs beside the job, not in its way: its request/reply round trip used to sit
between one LLM call and the next (and before the result), ~40 % of a plan's ledger time on
the critical path (bench/latency/critical_path.py). Late is safe: until it lands the ledger
holds the call's *maximum*, so other calls see less budget, never more; if it never lands, the
usage event (carrying the reservation id) accounts the reservation when the ledger ingests
it, or it expires and is charged at its maximum. The job waits for its settles after its
result is published (JobRunner.run_job), so none is left behind by a finished job.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Counter
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import AgentJob
from tripmesh_kit.bus import Bus
from tripmesh_kit.logging import get_logger

from tripmesh_agent_runner.agents.outcome import LlmCallRecord
from tripmesh_agent_runner.budget import Reserver
from tripmesh_agent_runner.domain import Delivery, usage_event

log = get_logger(__name__)

LLM_CALLS = Counter(
    "tripmesh_llm_calls",
    "LLM calls by agent, model and outcome (ok, error, cache_hit)",
    ["agent", "model", "outcome"],
)
LLM_TOKENS = Counter(
    "tripmesh_llm_tokens",
    "LLM tokens by agent, model and kind (prompt, completion)",
    ["agent", "model", "kind"],
)
LLM_COST = Counter("tripmesh_llm_cost_usd", "LLM cost in USD by agent and model", ["agent", "model"])
LLM_COST_ESTIMATED = Counter(
    "tripmesh_llm_cost_estimated",
    "LLM calls priced from a fallback price (model missing from litellm's price map)",
    ["agent", "model"],
)


class UsagePublishError(Exception):
    """The USAGE stream did not take a usage event: an infrastructure failure."""


def record_metrics(agent: str, call: LlmCallRecord) -> None:
    outcome = "error" if not call.success else ("cache_hit" if call.cache_hit else "ok")
    LLM_CALLS.labels(agent=agent, model=call.model, outcome=outcome).inc()
    LLM_TOKENS.labels(agent=agent, model=call.model, kind="prompt").inc(call.prompt_tokens)
    LLM_TOKENS.labels(agent=agent, model=call.model, kind="completion").inc(call.completion_tokens)
    LLM_COST.labels(agent=agent, model=call.model).inc(float(call.cost_usd))
    if call.cost_estimated:
        LLM_COST_ESTIMATED.labels(agent=agent, model=call.model).inc()


class UsagePublisher:
    """`CallObserver` for one delivery of one job: reserves each call's maximum in the ledger
    before it (when budgets are enforced), publishes its usage event and settles it after."""

    def __init__(
        self,
        bus: Bus,
        delivery: Delivery,
        reserver: Reserver | None = None,
        settles: set[asyncio.Task[None]] | None = None,
    ) -> None:
        self.bus = bus
        self.delivery = delivery
        self.reserver = reserver
        """None = budgets not enforced (AGENT_RUNNER_BUDGET_ENFORCED=false): calls run unreserved."""
        self.published: list[str] = []
        self.settles: set[asyncio.Task[None]] = set() if settles is None else settles
        """Settles under way (the caller awaits them: `settled`)."""

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
    ) -> str | None:
        """The call's reservation id (None when budgets are not enforced)."""
        # Fail closed: BudgetExhausted (denied) ends the agent; LedgerUnavailable (no
        # decision) escapes the engine and the job is nak'ed - never a call without a grant.
        if self.reserver is None:
            return None
        return await self.reserver.reserve(
            job=job, model=model, call_index=call_index, messages=messages, tools=tools,
            max_tokens=max_tokens,
        )  # fmt: skip

    async def after_llm_call(self, *, job: AgentJob, record: LlmCallRecord) -> None:
        record_metrics(job.agent.value, record)
        reservation = self.reserver.reservation_of(record.call_index) if self.reserver else None
        event = usage_event(job, self.delivery, record, reservation)
        try:
            await self.bus.publish(event, subjects.usage(job.user_id))
        except Exception as exc:
            # the reservation stays held: it expires and is charged at its maximum (estimated)
            raise UsagePublishError(f"usage event {event.id}: {type(exc).__name__}: {exc}") from exc
        self.published.append(event.id)
        if self.reserver is not None:
            settle = self.reserver.settle(
                job=job, call_index=record.call_index, actual_usd=record.cost_usd, usage_event_id=event.id
            )
            self.settles.add(asyncio.create_task(settle, name=f"settle {event.id}"))


async def settled(settles: set[asyncio.Task[None]]) -> None:
    """Wait for the settles under way. One that failed is only logged: see `Reserver.settle`."""
    if not settles:
        return
    for outcome in await asyncio.gather(*settles, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.warning("settle_failed_left_to_expiry", error=f"{type(outcome).__name__}: {outcome}"[:300])
    settles.clear()
