"""Answers to the budget side of `svc.ledger.*`: reserve, settle, budget get/set, alerts."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from tripmesh_contracts.rpc import (
    AlertsReply,
    AlertsRequest,
    BudgetGetRequest,
    BudgetSetRequest,
    BudgetView,
    ReserveReply,
    ReserveRequest,
    SettleReply,
    SettleRequest,
)

from tripmesh_cost_ledger import metrics
from tripmesh_cost_ledger.alerts_store import AlertStore
from tripmesh_cost_ledger.domain import Caps, effective_caps
from tripmesh_cost_ledger.reservations import ReservationStore


def utcnow() -> datetime:
    return datetime.now(UTC)


class BudgetQueries:
    def __init__(
        self,
        reservations: ReservationStore,
        alerts: AlertStore,
        tier_caps: dict[str, Caps],
        plan_cap_default: Decimal | None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.reservations = reservations
        self.alerts = alerts
        self.tier_caps = tier_caps
        self.plan_cap_default = plan_cap_default
        self.now = now

    async def reserve(self, req: ReserveRequest) -> ReserveReply:
        started = time.perf_counter()
        outcome = await self.reservations.reserve(req, self.now())
        metrics.RESERVE_SECONDS.observe(time.perf_counter() - started)
        metrics.RESERVATIONS.labels(
            outcome="granted" if outcome.granted else "denied", reason=outcome.reason or ""
        ).inc()
        return ReserveReply(
            granted=outcome.granted,
            reason=outcome.reason,
            remaining_usd=outcome.remaining,
            expires_at=outcome.expires_at,
        )

    async def settle(self, req: SettleRequest) -> SettleReply:
        settled, state = await self.reservations.settle(req.reservation_id, req.user_id, req.actual_usd)
        return SettleReply(settled=settled, state=state)

    async def budget_get(self, req: BudgetGetRequest) -> BudgetView:
        await self.reservations.remember_tier(req.user_id, req.tier)
        return await self._view(req.user_id, req.tier)

    async def budget_set(self, req: BudgetSetRequest) -> BudgetView:
        caps = Caps(req.caps.daily_cap_usd, req.caps.monthly_cap_usd)
        await self.reservations.set_caps(req.user_id, req.tier, caps, req.set_by)
        return await self._view(req.user_id, req.tier)

    async def alerts_for(self, req: AlertsRequest) -> AlertsReply:
        return AlertsReply(alerts=await self.alerts.for_user(req.user_id, req.limit))

    async def _view(self, user_id: str, tier: str) -> BudgetView:
        budget = await self.reservations.user_budget(user_id, self.now().date())
        caps = effective_caps(tier, self.tier_caps, budget.override)
        return BudgetView(
            user_id=user_id,
            tier=tier,
            daily_cap_usd=caps.daily_usd,
            monthly_cap_usd=caps.monthly_usd,
            daily_cap_is_default=budget.override.daily_usd is None,
            monthly_cap_is_default=budget.override.monthly_usd is None,
            daily_spent_usd=budget.daily_spent,
            monthly_spent_usd=budget.monthly_spent,
            reserved_usd=budget.reserved,
            plan_cap_default_usd=self.plan_cap_default,
        )
