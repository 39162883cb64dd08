"""HTTP request/response bodies (the seeds' API shapes). Bodies forbid unknown fields: a typo
such as `destination` is a 422 naming the field, not a silently ignored value."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from tripmesh_contracts import MultitaskStrategy, Place, PlanStatus
from tripmesh_contracts.rpc import PlanVersionView

from tripmesh_gateway.domain import known_currencies

Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""Decimal inside, a JSON number outside (clients expect 2500.0, not "2500")."""
PlaceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Username = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- auth -------------------------------------------------------------------------------


class SignupBody(Body):
    email: EmailStr
    username: Username
    password: str = Field(max_length=256)
    password_confirm: str = Field(max_length=256)

    @field_validator("password_confirm")
    @classmethod
    def _confirm_matches(cls, value: str, info: ValidationInfo) -> str:
        if "password" in info.data and value != info.data["password"]:
            raise ValueError("passwords do not match")
        return value


class LoginBody(Body):
    email: EmailStr
    password: str = Field(max_length=256)


class RefreshBody(Body):
    refresh_token: str = Field(min_length=1, max_length=200)


class UserOut(BaseModel):
    id: str
    email: str
    username: str
    subscription_tier: str
    is_active: bool
    role: Literal["user", "admin"] = "user"
    """`admin` may read and set anyone's budget; granted only by an operator."""
    created_at: datetime
    last_login_at: datetime | None = None
    first_name: str | None = None
    last_name: str | None = None
    preferences: dict[str, Any] = Field(default_factory=dict)


PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ProfileUpdateBody(Body):
    """PATCH /auth/me: the fields to change; null clears a name."""

    username: Username | None = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    preferences: dict[str, Any] | None = None

    @field_validator("preferences")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(value) > 50:
            raise ValueError("at most 50 preferences")
        return value


class PasswordChangeBody(Body):
    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)
    new_password_confirm: str = Field(max_length=256)

    @field_validator("new_password_confirm")
    @classmethod
    def _confirm_matches(cls, value: str, info: ValidationInfo) -> str:
        if "new_password" in info.data and value != info.data["new_password"]:
            raise ValueError("passwords do not match")
        return value


class ApiKeyCreateBody(Body):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    """None: the key lives until revoked."""


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    """The first characters of the key, to tell keys apart; the key itself is never shown again."""
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str
    """Shown once: send it as `Authorization: Bearer <key>`. Only its hash is stored."""


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    """Seconds until the access token expires."""


# --- plans ------------------------------------------------------------------------------


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in known_currencies():
        raise ValueError(f"'{value}' is not an ISO 4217 currency code in use")
    return code


class PlanFields(Body):
    """Fields shared by create (required ones required) and update (all optional)."""

    @field_validator("budget_currency", check_fields=False)
    @classmethod
    def _iso_currency(cls, value: str | None) -> str | None:
        return None if value is None else _currency(value)

    @field_validator("end_date", check_fields=False)
    @classmethod
    def _not_before_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start_date")
        if value is not None and start is not None and value < start:
            raise ValueError("end_date must not be before start_date")
        return value


class PlanCreateBody(PlanFields):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    destinations: list[PlaceName] = Field(min_length=1, max_length=10)
    """City names ("Lisbon", "Portland, Maine", "London, UK"), resolved to real places."""
    origin: PlaceName | None = None
    start_date: date
    end_date: date
    budget_total: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    budget_currency: str = "USD"
    traveler_count: int = Field(default=1, ge=1, le=50)
    preferences: dict[str, Any] = Field(default_factory=dict)
    constraints: dict[str, Any] = Field(default_factory=dict)
    plan_budget_usd: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=4)
    """Optional cap on the LLM spend for this plan (the ledger enforces it)."""


class PlanUpdateBody(PlanFields):
    """PUT: the fields to change (others stay), optional feedback for the next version."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    destinations: list[PlaceName] | None = Field(default=None, min_length=1, max_length=10)
    origin: PlaceName | None = None
    start_date: date | None = None
    end_date: date | None = None
    budget_total: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    budget_currency: str | None = None
    traveler_count: int | None = Field(default=None, ge=1, le=50)
    preferences: dict[str, Any] | None = None
    constraints: dict[str, Any] | None = None
    feedback: str | None = Field(default=None, max_length=5000)
    multitask_strategy: MultitaskStrategy = MultitaskStrategy.REJECT


class CancelBody(Body):
    reason: str | None = Field(default=None, max_length=1000)


class DecisionBody(Body):
    approve: bool


class PlanReadout(BaseModel):
    """What every reader of a plan sees (the planner's PlanView and the resolved places)."""

    id: str
    user_id: str
    title: str
    description: str | None = None
    destinations: list[str]
    origin: str | None = None
    start_date: date
    end_date: date
    budget_total: Money
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
    places: list[Place] = Field(default_factory=list)
    """The destinations as resolved when the gateway accepted the latest request."""
    origin_place: Place | None = None


class PlanOut(PlanReadout):
    """A plan as its owner sees it: with its costs."""

    total_cost_usd: Annotated[
        Decimal | None, PlainSerializer(lambda v: None if v is None else float(v), when_used="json")
    ] = None
    cost_status: Literal["ok", "unavailable", "not_requested"] = "not_requested"
    """`unavailable`: the ledger did not answer in time, so total_cost_usd is left out."""


# --- costs ------------------------------------------------------------------------------

CapUsd = Annotated[Decimal | None, Field(ge=0, max_digits=14, decimal_places=4)]


class BudgetBody(Body):
    """PUT /costs/budget: the caps to change, in USD ("2.50" or 2.5). A field left out keeps
    its current setting; null returns it to the tier's default."""

    daily_cap_usd: CapUsd = None
    monthly_cap_usd: CapUsd = None


class PlanPage(BaseModel):
    items: list[PlanOut]
    total: int
    limit: int
    offset: int


class VersionList(BaseModel):
    items: list[PlanVersionView]


class Accepted(BaseModel):
    """202 for revise/cancel/decide: the command is on the bus; progress comes as events."""

    plan_id: str
    command: str
    message_id: str
    status: Literal["accepted"] = "accepted"
