"""Request/reply contracts for `svc.*` (core NATS request/reply between services).

Every reply carries `error` (None on success) so a caller can map it to problem+json.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tripmesh_contracts.ids import SafeId
from tripmesh_contracts.money import Money
from tripmesh_contracts.plans import PlanStatus


class RpcModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class RpcError(RpcModel):
    status: int = Field(description="HTTP-like status: 404 not found, 409 conflict, 422 ...")
    title: str
    detail: str | None = None


class RpcReply(RpcModel):
    error: RpcError | None = None


# --- planner ---------------------------------------------------------------------------


class PlanGetRequest(RpcModel):
    user_id: SafeId
    plan_id: SafeId


class PlanView(RpcModel):
    id: SafeId
    user_id: SafeId
    title: str
    description: str | None = None
    destinations: list[str]
    origin: str | None = None
    start_date: date
    end_date: date
    budget_total: Decimal
    budget_currency: str
    traveler_count: int
    preferences: dict[str, Any] = Field(default_factory=dict)
    constraints: dict[str, Any] = Field(default_factory=dict)
    status: PlanStatus
    version: int
    completion_percentage: int = 0
    plan_data: dict[str, Any] = Field(default_factory=dict)
    agent_results: dict[str, Any] = Field(default_factory=dict)
    status_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None


class PlanGetReply(RpcReply):
    plan: PlanView | None = None


class PlanListRequest(RpcModel):
    user_id: SafeId
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0)


class PlanListReply(RpcReply):
    items: list[PlanView] = Field(default_factory=list)
    total: int = 0


class PlanVersionsRequest(RpcModel):
    user_id: SafeId
    plan_id: SafeId


class PlanVersionView(RpcModel):
    plan_id: SafeId
    version: int
    parent_version: int | None = None
    status: PlanStatus
    request: dict[str, Any]
    plan_data: dict[str, Any] = Field(default_factory=dict)
    agent_results: dict[str, Any] = Field(default_factory=dict)
    feedback: str | None = None
    started_at: datetime | None = None
    created_at: datetime


class PlanVersionsReply(RpcReply):
    items: list[PlanVersionView] = Field(default_factory=list)


class PlanVersionRequest(RpcModel):
    user_id: SafeId
    plan_id: SafeId
    version: int = Field(ge=1)


class PlanVersionReply(RpcReply):
    version: PlanVersionView | None = None


# --- ledger ----------------------------------------------------------------------------


class SummaryPeriod(StrEnum):
    DAY = "day"
    MONTH = "month"
    CUSTOM = "custom"
    ALL = "all"


class CostSummaryRequest(RpcModel):
    user_id: SafeId
    plan_id: SafeId | None = None
    period: SummaryPeriod = SummaryPeriod.ALL
    start: date | None = None
    end: date | None = None


class CostBucket(RpcModel):
    key: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Money


class CostSummaryReply(RpcReply):
    user_id: SafeId | None = None
    plan_id: SafeId | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_cost_usd: Money = Decimal("0")
    by_agent: list[CostBucket] = Field(default_factory=list)
    by_model: list[CostBucket] = Field(default_factory=list)
    by_provider: list[CostBucket] = Field(default_factory=list)
    by_day: list[CostBucket] = Field(default_factory=list)


class PlanCostsRequest(RpcModel):
    user_id: SafeId
    plan_ids: list[SafeId] = Field(max_length=100)


class PlanCostsReply(RpcReply):
    costs: dict[str, Money] = Field(default_factory=dict)


class BudgetCheckRequest(RpcModel):
    user_id: SafeId
    tier: str = "free"


class BudgetCheckReply(RpcReply):
    allowed: bool = True
    reason: str | None = None
    daily_spent_usd: Money = Decimal("0")
    daily_cap_usd: Money | None = None
    monthly_spent_usd: Money = Decimal("0")
    monthly_cap_usd: Money | None = None


class BudgetCaps(RpcModel):
    """A user's caps; None = no limit (or, in a `budget.set`, "back to the tier default")."""

    daily_cap_usd: Money | None = None
    monthly_cap_usd: Money | None = None


class BudgetGetRequest(RpcModel):
    user_id: SafeId
    tier: str = "free"


class BudgetView(RpcReply):
    """A user's effective caps (own override, else the tier's), spend and reservations held."""

    user_id: SafeId | None = None
    tier: str = "free"
    daily_cap_usd: Money | None = None
    monthly_cap_usd: Money | None = None
    daily_cap_is_default: bool = True
    monthly_cap_is_default: bool = True
    daily_spent_usd: Money = Decimal("0")
    monthly_spent_usd: Money = Decimal("0")
    reserved_usd: Money = Decimal("0")
    """Held by LLM calls in flight (not yet in the spend figures)."""
    plan_cap_default_usd: Money | None = None


class BudgetSetRequest(RpcModel):
    user_id: SafeId
    tier: str = "free"
    caps: BudgetCaps
    set_by: SafeId


class ReserveRequest(RpcModel):
    """Hold `amount_usd` (an LLM call's maximum cost) against the user's and the plan's caps.
    `reservation_id` makes it idempotent: asking again returns the first decision."""

    reservation_id: SafeId
    user_id: SafeId
    plan_id: SafeId | None = None
    plan_cap_usd: Money | None = None
    """The plan's own cap when its request lowered the ledger's default (never raises it)."""
    amount_usd: Money = Field(ge=0)
    agent: str | None = None
    model: str | None = None
    ttl_seconds: float = Field(default=300, gt=0, le=3600)
    """After this the reservation is charged at `amount_usd`, marked estimated."""


class ReserveReply(RpcReply):
    granted: bool = False
    reason: str | None = None
    """daily_cap_reached | monthly_cap_reached | plan_cap_reached (comma-separated)"""
    remaining_usd: Money | None = None
    """The tightest cap's headroom after this reservation (None: no cap applies)."""
    expires_at: datetime | None = None


class SettleRequest(RpcModel):
    """The call ended: its actual cost replaces the reserved maximum (0 releases it)."""

    reservation_id: SafeId
    user_id: SafeId
    actual_usd: Money = Field(ge=0)
    usage_event_id: SafeId | None = None


class SettleReply(RpcReply):
    settled: bool = False
    state: str | None = None
    """held | settled | expired | unknown"""


class AlertScope(StrEnum):
    DAILY = "daily"
    MONTHLY = "monthly"
    PLAN = "plan"


class CostAlertView(RpcModel):
    id: SafeId
    user_id: SafeId
    scope: AlertScope
    period: str
    """The day (2026-11-23), the month (2026-11) or the plan id the threshold applies to."""
    plan_id: SafeId | None = None
    threshold_percent: int
    spent_usd: Money
    cap_usd: Money
    raised_at: datetime


class AlertsRequest(RpcModel):
    user_id: SafeId
    limit: int = Field(default=50, ge=1, le=500)


class AlertsReply(RpcReply):
    alerts: list[CostAlertView] = Field(default_factory=list)


# --- vectors ---------------------------------------------------------------------------


class SearchFilters(RpcModel):
    country: str | None = None
    start_after: date | None = None
    end_before: date | None = None
    budget_min: Decimal | None = None
    budget_max: Decimal | None = None
    status: PlanStatus | None = None


class SimilarPlansRequest(RpcModel):
    user_id: SafeId
    plan_id: SafeId
    limit: int = Field(default=5, ge=1, le=50)
    filters: SearchFilters = Field(default_factory=SearchFilters)


class SearchPlansRequest(RpcModel):
    user_id: SafeId
    q: str = Field(min_length=1, max_length=500)
    limit: int = Field(default=10, ge=1, le=50)
    filters: SearchFilters = Field(default_factory=SearchFilters)


class SearchHit(RpcModel):
    plan_id: SafeId
    version: int
    title: str
    score: float
    destinations: list[str] = Field(default_factory=list)
    matched: dict[str, Any] = Field(default_factory=dict)


class SearchReply(RpcReply):
    hits: list[SearchHit] = Field(default_factory=list)
