"""Bodies and views of plan sharing. A shared reader's view of a plan has no cost fields at
all (not even null): the owner's spend is the owner's business (ARCHITECTURE §9)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from tripmesh_contracts.rpc import PlanVersionView

from tripmesh_gateway.api.schemas import Body, PlanOut, PlanReadout


class ShareCreateBody(Body):
    """`type: link` makes a read-only link token (shown once); `type: user` shares with the
    account named in `user` (its id, e-mail or username), who reads it with their own login."""

    type: Literal["link", "user"]
    user: str | None = Field(default=None, min_length=1, max_length=320)
    expires_at: datetime | None = None
    """When the share stops working (must be in the future, with a time zone); none: never."""
    searchable: bool = False
    """`type: user` only: the reader's GET /search/plans may find this plan."""

    @model_validator(mode="after")
    def _user_iff_user_share(self) -> ShareCreateBody:
        if self.type == "user" and self.user is None:
            raise ValueError("user: required when type is user")
        if self.type == "link" and self.user is not None:
            raise ValueError("user: only for type user")
        if self.type == "link" and self.searchable:
            raise ValueError("searchable: only for type user")
        return self


class SharedWith(BaseModel):
    id: str
    username: str
    email: str


class ShareOut(BaseModel):
    id: str
    plan_id: str
    type: Literal["link", "user"]
    permission: Literal["read"] = "read"
    shared_with: SharedWith | None = None
    searchable: bool
    created_at: datetime
    expires_at: datetime | None = None
    expired: bool
    access_count: int
    """Reads through a link token."""
    last_accessed_at: datetime | None = None


class ShareCreated(ShareOut):
    token: str | None = None
    """The link token, shown only in this response (only its hash is stored)."""
    url: str | None = None
    """Where the token reads the plan: GET {url}, {url}/versions, {url}/versions/{n}."""


class ShareList(BaseModel):
    items: list[ShareOut]


class SharedPlanOut(PlanReadout):
    """A plan as someone it is shared with sees it: read-only, no costs. `agent_results` holds
    per agent only status, reason, error_kind and round (no models, tokens or costs)."""

    access: Literal["shared"] = "shared"
    permission: Literal["read"] = "read"


class SharedPlanPage(BaseModel):
    items: list[SharedPlanOut]
    total: int
    limit: int
    offset: int


AGENT_RESULT_KEYS = frozenset({"status", "reason", "error_kind", "round"})
"""What a reader sees of each agent's bookkeeping; costs, tokens and models stay with the owner."""


def redact_agent_results(results: dict[str, Any]) -> dict[str, Any]:
    return {
        agent: {k: v for k, v in info.items() if k in AGENT_RESULT_KEYS} if isinstance(info, dict) else {}
        for agent, info in results.items()
    }


def shared_view(plan: PlanOut) -> SharedPlanOut:
    data = plan.model_dump(exclude={"total_cost_usd", "cost_status"})
    data["agent_results"] = redact_agent_results(data["agent_results"])
    return SharedPlanOut.model_validate(data)


def shared_version(version: PlanVersionView) -> PlanVersionView:
    return version.model_copy(update={"agent_results": redact_agent_results(version.agent_results)})
