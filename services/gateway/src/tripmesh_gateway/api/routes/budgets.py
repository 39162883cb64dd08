"""/api/v1/costs/budget and /costs/alerts: spend caps and cost alerts, kept by the cost-ledger
(svc.ledger.budget.get / budget.set / alerts). Roles decide who may set which cap
(tripmesh_gateway.budget_rules); the ledger only stores and enforces them."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from tripmesh_contracts import subjects
from tripmesh_contracts.rpc import (
    AlertsReply,
    AlertsRequest,
    BudgetCaps,
    BudgetGetRequest,
    BudgetSetRequest,
    BudgetView,
)

from tripmesh_gateway.api.deps import AccountInQuestion, CurrentUser, RuntimeDep
from tripmesh_gateway.api.errors import ApiProblem, validation_problem
from tripmesh_gateway.api.schemas import BudgetBody
from tripmesh_gateway.budget_rules import CAP_FIELDS, self_service_refusals
from tripmesh_gateway.domain import FieldError
from tripmesh_gateway.runtime import Runtime
from tripmesh_gateway.store import UserRecord

router = APIRouter(prefix="/costs", tags=["costs"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "user_id without the admin role, or a raise that needs an admin"},
    404: {"description": "No user with this user_id"},
    503: {"description": "The ledger did not answer"},
}


async def budget_of(runtime: Runtime, account: UserRecord) -> BudgetView:
    request = BudgetGetRequest(user_id=account.id, tier=account.subscription_tier)
    return await runtime.rpc.call(subjects.SVC_LEDGER_BUDGET_GET, request, BudgetView)


@router.get("/budget", response_model=BudgetView, response_model_exclude={"error"}, responses=PROBLEMS)
async def get_budget(account: AccountInQuestion, runtime: RuntimeDep) -> BudgetView:
    """Your caps (your own, else your tier's: `*_is_default`), today's and this month's
    spend, what LLM calls in flight hold, and the default cap of a plan. Admins: `?user_id=`."""
    return await budget_of(runtime, account)


@router.put(
    "/budget",
    response_model=BudgetView,
    response_model_exclude={"error"},
    responses={**PROBLEMS, 422: {"description": "A cap is not a non-negative amount"}},
)
async def set_budget(
    body: BudgetBody, caller: CurrentUser, account: AccountInQuestion, runtime: RuntimeDep
) -> BudgetView:
    """Set caps (null: back to the tier's default; a field left out stays). An admin may set
    anyone's (`?user_id=`); you may lower your own or reset them, and raising one above your
    tier's default needs an admin (403)."""
    changes: dict[str, Decimal | None] = {name: getattr(body, name) for name in body.model_fields_set}
    if not changes:
        raise validation_problem([FieldError("body", "send daily_cap_usd and/or monthly_cap_usd")])
    current: BudgetView | None = None
    if not caller.is_admin or len(changes) < len(CAP_FIELDS):
        current = await budget_of(runtime, account)
    if not caller.is_admin:
        assert current is not None
        refusals = self_service_refusals(current, changes)
        if refusals:
            detail = refusals[0].message if len(refusals) == 1 else "raising these caps needs an admin"
            raise ApiProblem(403, "Forbidden", detail, kind="forbidden", errors=refusals)
    caps = BudgetCaps(
        daily_cap_usd=_new_or_kept(changes, "daily_cap_usd", current),
        monthly_cap_usd=_new_or_kept(changes, "monthly_cap_usd", current),
    )
    request = BudgetSetRequest(
        user_id=account.id, tier=account.subscription_tier, caps=caps, set_by=caller.id
    )
    return await runtime.rpc.call(subjects.SVC_LEDGER_BUDGET_SET, request, BudgetView)


def _new_or_kept(
    changes: dict[str, Decimal | None], field: str, current: BudgetView | None
) -> Decimal | None:
    """The cap to send: the new one, or for a field left out the user's own cap as it is
    (None - the tier's default - when they have none; a budget.set always sets both)."""
    if field in changes:
        return changes[field]
    assert current is not None
    if field == "daily_cap_usd":
        return None if current.daily_cap_is_default else current.daily_cap_usd
    return None if current.monthly_cap_is_default else current.monthly_cap_usd


@router.get("/alerts", response_model=AlertsReply, response_model_exclude={"error"}, responses=PROBLEMS)
async def list_alerts(
    account: AccountInQuestion,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertsReply:
    """Cost alerts (a daily, monthly or plan cap's threshold crossed), newest first. The same
    alerts arrive live on `GET /api/v1/events`. Admins: `?user_id=`."""
    reply = await runtime.rpc.call(
        subjects.SVC_LEDGER_ALERTS, AlertsRequest(user_id=account.id, limit=limit), AlertsReply
    )
    # Only this account's, newest first, whatever the ledger's order (a tenant filter twice).
    alerts = [alert for alert in reply.alerts if alert.user_id == account.id]
    alerts.sort(key=lambda alert: alert.raised_at, reverse=True)
    return AlertsReply(alerts=alerts)
