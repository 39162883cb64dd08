"""Bus messages: plan commands, agent jobs and results, plan events, changes and usage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from tripmesh_contracts.envelope import Envelope
from tripmesh_contracts.ids import SafeId
from tripmesh_contracts.money import Money
from tripmesh_contracts.plans import AgentName, EventKind, PlanRequest, PlanStatus, Stage


class MultitaskStrategy(StrEnum):
    """What a new request does while a run of the same plan is active."""

    REJECT = "reject"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"


# --- plans.cmd.* ---------------------------------------------------------------------------


class PlanCreate(Envelope):
    TYPE: ClassVar[str] = "plan.create.v1"
    plan_id: SafeId
    request: PlanRequest
    plan_budget_usd: Decimal | None = None
    """LLM spend cap for this plan (ledger enforces it), when the request lowers the default."""


class PlanRevise(Envelope):
    TYPE: ClassVar[str] = "plan.revise.v1"
    plan_id: SafeId
    request: PlanRequest
    feedback: str | None = Field(default=None, max_length=5000)
    multitask_strategy: MultitaskStrategy = MultitaskStrategy.REJECT


class PlanDecide(Envelope):
    TYPE: ClassVar[str] = "plan.decide.v1"
    plan_id: SafeId
    approve: bool


class PlanCancel(Envelope):
    TYPE: ClassVar[str] = "plan.cancel.v1"
    plan_id: SafeId
    reason: str | None = None


class PlanDelete(Envelope):
    TYPE: ClassVar[str] = "plan.delete.v1"
    plan_id: SafeId


PLAN_COMMANDS: dict[str, type[Envelope]] = {
    m.TYPE: m for m in (PlanCreate, PlanRevise, PlanDecide, PlanCancel, PlanDelete)
}


# --- agents.job.<agent> / agents.result.<plan> ----------------------------------------------


class AgentJob(Envelope):
    """One agent call for one plan run. `id` is deterministic per (run, stage round, agent,
    attempt) so a node that re-runs after a crash re-publishes the same message id."""

    TYPE: ClassVar[str] = "agent.job.v1"
    plan_id: SafeId
    run_id: SafeId
    version: int = Field(ge=1)
    agent: AgentName
    stage: Stage
    round: int = Field(default=0, ge=0)
    """Budget loop round: options re-run with tighter constraints bump it."""
    attempt: int = Field(default=1, ge=1)
    request: PlanRequest
    context: dict[str, Any] = Field(default_factory=dict)
    """Results of earlier stages this agent builds on (agent name -> output)."""
    constraints: dict[str, Any] = Field(default_factory=dict)
    """Stage-specific constraints, e.g. a tighter budget share on a budget loop."""
    deadline: datetime | None = None
    llm_cap_usd: Money | None = None
    """The plan's own LLM spend cap when its request lowered the ledger's default."""


class AgentResult(Envelope):
    TYPE: ClassVar[str] = "agent.result.v1"
    plan_id: SafeId
    job_id: SafeId
    run_id: SafeId
    version: int = Field(ge=1)
    agent: AgentName
    stage: Stage
    round: int = 0
    attempt: int = 1
    ok: bool
    output: dict[str, Any] | None = None
    error: str | None = None
    error_kind: str | None = None
    """Why it failed, machine readable: invalid_output, budget_exhausted, llm_error, ..."""
    cost_usd: Money = Decimal("0")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_ms: int = 0
    model: str | None = None


# --- plans.evt.<user>.<plan>.<kind> ----------------------------------------------------------


class PlanEvent(Envelope):
    """A state change of one plan, as a client sees it on SSE or its own NATS subjects."""

    TYPE: ClassVar[str] = "plan.event.v1"
    plan_id: SafeId
    kind: EventKind
    status: PlanStatus
    version: int = Field(default=1, ge=1)
    run_id: SafeId | None = None
    stage: Stage | None = None
    agent: AgentName | None = None
    completion_percentage: int = Field(default=0, ge=0, le=100)
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


# --- plans.changed.<plan> ----------------------------------------------------------------


class PlanSnapshot(BaseModel):
    """What read models (vectors) need of a plan version."""

    model_config = ConfigDict(extra="ignore")

    title: str
    description: str | None = None
    destinations: list[str]
    countries: list[str]
    start_date: str
    end_date: str
    budget_total: Decimal
    budget_currency: str
    status: PlanStatus
    preferences: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""
    """A short text of the itinerary: what gets embedded along with the title."""


class PlanChanged(Envelope):
    """The latest state of a plan for read models. PLAN_CHANGES keeps the last per subject."""

    TYPE: ClassVar[str] = "plan.changed.v1"
    plan_id: SafeId
    version: int = Field(ge=1)
    deleted: bool = False
    snapshot: PlanSnapshot | None = None


# --- usage.llm.<user> ----------------------------------------------------------------------


class UsageEvent(Envelope):
    """One LLM call (success, failure, retry or cache hit). `id` is the ledger's key."""

    TYPE: ClassVar[str] = "usage.llm.v1"
    job_id: SafeId | None = None
    run_id: SafeId | None = None
    version: int | None = None
    agent: AgentName | None = None
    model: str
    provider: str
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: Money = Field(default=Decimal("0"), ge=0)
    latency_ms: int = Field(default=0, ge=0)
    attempt: int = Field(default=1, ge=1)
    cache_hit: bool = False
    success: bool = True
    error: str | None = None
    reservation_id: SafeId | None = None
    """The ledger reservation this call ran under (its settlement)."""
    estimated: bool = False
    """True only for the ledger's own charge of a reservation that was never settled (the
    runner died mid-call): `cost_usd` is the reserved maximum, and a real usage event with the
    same `reservation_id` replaces it whenever it arrives."""


# --- users.evt.<user>.cost_alert ---------------------------------------------------------------


class CostAlert(Envelope):
    """Spend crossed `threshold_percent` of a cap: once per threshold per period (a day, a
    month, or a plan's whole life). Published by the cost-ledger on
    `users.evt.<user>.cost_alert`; `id` is deterministic per (user, scope, period, threshold)."""

    TYPE: ClassVar[str] = "cost.alert.v1"
    scope: str
    """daily | monthly | plan"""
    period: str
    threshold_percent: int = Field(ge=1, le=100)
    spent_usd: Money
    cap_usd: Money
