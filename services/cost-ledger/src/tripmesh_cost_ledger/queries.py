"""Answers to `svc.ledger.*` requests, always scoped to the request's user_id."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tripmesh_contracts.rpc import (
    BudgetCheckReply,
    BudgetCheckRequest,
    CostBucket,
    CostSummaryReply,
    CostSummaryRequest,
    PlanCostsReply,
    PlanCostsRequest,
)

from tripmesh_cost_ledger.domain import (
    ZERO,
    Caps,
    budget_decision,
    effective_caps,
    month_bounds,
    period_range,
)
from tripmesh_cost_ledger.store import LedgerStore, SummaryRow

DIMENSIONS = ("agent", "model", "provider", "day")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _bucket(row: SummaryRow) -> CostBucket:
    t = row.totals
    return CostBucket(
        key=row.key,
        calls=t.calls,
        prompt_tokens=t.prompt_tokens,
        completion_tokens=t.completion_tokens,
        cost_usd=t.cost_usd,
    )


def summary_reply(req: CostSummaryRequest, rows: list[SummaryRow]) -> CostSummaryReply:
    """Buckets by day in date order; the others by cost, highest first (ties by key)."""
    buckets: dict[str, list[CostBucket]] = {d: [] for d in DIMENSIONS}
    reply = CostSummaryReply(user_id=req.user_id, plan_id=req.plan_id)
    for row in rows:
        if row.dimension == "total":
            reply.calls = row.totals.calls
            reply.prompt_tokens = row.totals.prompt_tokens
            reply.completion_tokens = row.totals.completion_tokens
            reply.total_cost_usd = row.totals.cost_usd
        else:
            buckets[row.dimension].append(_bucket(row))
    for dim in ("agent", "model", "provider"):
        buckets[dim].sort(key=lambda b: (-b.cost_usd, b.key))
    buckets["day"].sort(key=lambda b: b.key)
    reply.by_agent, reply.by_model = buckets["agent"], buckets["model"]
    reply.by_provider, reply.by_day = buckets["provider"], buckets["day"]
    return reply


class LedgerQueries:
    def __init__(
        self, store: LedgerStore, tier_caps: dict[str, Caps], now: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.tier_caps = tier_caps
        self.now = now

    async def summary(self, req: CostSummaryRequest) -> CostSummaryReply:
        first, last = period_range(req.period, req.start, req.end, self.now().date())
        rows = await self.store.summary(req.user_id, req.plan_id, first, last)
        return summary_reply(req, rows)

    async def plan_costs(self, req: PlanCostsRequest) -> PlanCostsReply:
        """Every requested plan gets a figure: $0 for a plan with no usage (or not this
        user's: the answer reveals nothing about other users' plans)."""
        found = await self.store.plan_costs(req.user_id, req.plan_ids)
        return PlanCostsReply(costs={p: found.get(p, ZERO) for p in req.plan_ids})

    async def budget_check(self, req: BudgetCheckRequest) -> BudgetCheckReply:
        today = self.now().date()
        month_first, month_last = month_bounds(today)
        daily, monthly = await self.store.spend(req.user_id, today, month_first, month_last)
        caps = effective_caps(req.tier, self.tier_caps, await self.store.user_caps(req.user_id))
        return budget_decision(daily, monthly, caps)
