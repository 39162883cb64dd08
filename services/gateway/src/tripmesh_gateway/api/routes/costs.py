"""/api/v1/costs: the caller's LLM spend, from the cost-ledger (svc.ledger.summary)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from tripmesh_contracts import subjects
from tripmesh_contracts.rpc import CostSummaryReply, CostSummaryRequest, SummaryPeriod

from tripmesh_gateway.api.deps import AccountInQuestion, RuntimeDep, owned_plan
from tripmesh_gateway.api.errors import validation_problem
from tripmesh_gateway.domain import FieldError

router = APIRouter(prefix="/costs", tags=["costs"])


@router.get(
    "/summary",
    response_model=CostSummaryReply,
    response_model_exclude={"error"},
    responses={
        401: {"description": "Missing or invalid bearer token"},
        403: {"description": "user_id given by someone who is not an admin"},
        404: {"description": "plan_id is not one of yours (or the user's, for an admin), or no such user"},
        503: {"description": "The ledger did not answer"},
    },
)
async def cost_summary(
    user: AccountInQuestion,
    runtime: RuntimeDep,
    plan_id: Annotated[str | None, Query(max_length=64)] = None,
    period: SummaryPeriod = SummaryPeriod.ALL,
    start: date | None = None,
    end: date | None = None,
) -> CostSummaryReply:
    """Totals and breakdowns (agent, model, provider, day) for a period, or for one plan.
    An admin may ask about another user with `?user_id=` (costs only: plans stay private)."""
    if start is not None and end is not None and end < start:
        raise validation_problem([FieldError("end", "must not be before start")])
    if period is SummaryPeriod.CUSTOM and start is None:
        raise validation_problem([FieldError("start", "required when period is custom")])
    if plan_id is not None:
        await owned_plan(plan_id, user, runtime)  # 404 for a plan that is not the account's
    request = CostSummaryRequest(user_id=user.id, plan_id=plan_id, period=period, start=start, end=end)
    return await runtime.rpc.call(subjects.SVC_LEDGER_SUMMARY, request, CostSummaryReply)
