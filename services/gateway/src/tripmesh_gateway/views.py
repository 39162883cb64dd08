"""Reading plans: the planner's view when it has one, the accepted request when it does not
yet, plus the owner's costs from the ledger when it answers in time."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from tripmesh_contracts import PlanRequest, subjects
from tripmesh_contracts.rpc import (
    PlanCostsReply,
    PlanCostsRequest,
    PlanGetReply,
    PlanGetRequest,
    PlanListReply,
    PlanListRequest,
    PlanView,
)
from tripmesh_kit.logging import get_logger

from tripmesh_gateway.api.schemas import PlanOut, PlanPage
from tripmesh_gateway.domain import accepted_view
from tripmesh_gateway.rpc import ServiceError, ServiceUnavailable
from tripmesh_gateway.runtime import Runtime
from tripmesh_gateway.store import PlanIndexRow

log = get_logger(__name__)


def stored_request(row: PlanIndexRow) -> PlanRequest:
    return PlanRequest.model_validate(row.request)


def plan_out(row: PlanIndexRow, view: PlanView | None) -> PlanOut:
    """The planner's view merged with what the gateway knows (resolved places)."""
    request = stored_request(row)
    fields: dict[str, Any] = (
        view.model_dump()
        if view is not None
        else accepted_view(
            plan_id=row.plan_id, user_id=row.user_id, request=request, created_at=row.created_at
        )
    )
    return PlanOut(**fields, places=request.destinations, origin_place=request.origin)


async def planner_view(runtime: Runtime, row: PlanIndexRow) -> PlanView | None:
    """The planner's view of an owned plan; None when the planner has not stored it yet."""
    try:
        reply = await runtime.rpc.call(
            subjects.SVC_PLANNER_GET, PlanGetRequest(user_id=row.user_id, plan_id=row.plan_id), PlanGetReply
        )
    except ServiceError as exc:
        if exc.error.status == 404:
            return None
        raise
    return reply.plan


async def plan_costs(runtime: Runtime, user_id: str, plan_ids: list[str]) -> dict[str, Decimal] | None:
    """Spend per plan in USD, or None when the ledger did not answer within its short timeout."""
    if not plan_ids:
        return {}
    try:
        reply = await runtime.rpc.call(
            subjects.SVC_LEDGER_PLAN_COSTS,
            PlanCostsRequest(user_id=user_id, plan_ids=plan_ids),
            PlanCostsReply,
            timeout=runtime.settings.cost_timeout_seconds,
        )
    except (ServiceUnavailable, ServiceError) as exc:
        log.info("plan_costs_unavailable", reason=str(exc))
        return None
    return reply.costs


def with_costs(plan: PlanOut, costs: dict[str, Decimal] | None) -> PlanOut:
    if costs is None:
        return plan.model_copy(update={"total_cost_usd": None, "cost_status": "unavailable"})
    return plan.model_copy(update={"total_cost_usd": costs.get(plan.id, Decimal("0")), "cost_status": "ok"})


async def get_plan(runtime: Runtime, row: PlanIndexRow) -> PlanOut | None:
    """None when the planner has never seen it and the gateway never accepted it (a create
    whose publish failed)."""
    view, costs = await asyncio.gather(
        planner_view(runtime, row), plan_costs(runtime, row.user_id, [row.plan_id])
    )
    if view is None and row.published_at is None:
        return None
    return with_costs(plan_out(row, view), costs)


async def list_plans(runtime: Runtime, user_id: str, limit: int, offset: int) -> PlanPage:
    """Page over the gateway's ownership index (exact totals, deleted plans hidden at once),
    filled with the planner's views from svc.planner.list; rows that page lacks (plans the
    planner has not stored yet, or ordered differently) are asked for one by one."""
    rows, total = await runtime.store.list_plans(user_id, limit, offset)
    if not rows:
        return PlanPage(items=[], total=total, limit=limit, offset=offset)
    listed, costs = await asyncio.gather(
        runtime.rpc.call(
            subjects.SVC_PLANNER_LIST,
            PlanListRequest(user_id=user_id, limit=limit, offset=offset),
            PlanListReply,
        ),
        plan_costs(runtime, user_id, [r.plan_id for r in rows]),
    )
    views: dict[str, PlanView | None] = {v.id: v for v in listed.items}
    missing = [r for r in rows if r.plan_id not in views]
    for row, view in zip(
        missing, await asyncio.gather(*(planner_view(runtime, r) for r in missing)), strict=True
    ):
        views[row.plan_id] = view
    items = [with_costs(plan_out(r, views.get(r.plan_id)), costs) for r in rows]
    return PlanPage(items=items, total=total, limit=limit, offset=offset)
