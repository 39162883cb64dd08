"""/api/v1/plans: create (202), read, list, revise, cancel, decide, delete, versions."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import ValidationError
from tripmesh_contracts import (
    MultitaskStrategy,
    PlanCancel,
    PlanDecide,
    PlanDelete,
    PlanRequest,
    PlanRevise,
    PlanStatus,
    new_id,
    stable_id,
    subjects,
)
from tripmesh_contracts.rpc import PlanVersionView

from tripmesh_gateway.api.deps import CurrentUser, IdempotencyKey, OwnedPlan, RuntimeDep
from tripmesh_gateway.api.errors import ApiProblem, field_errors, not_found, validation_problem
from tripmesh_gateway.api.plan_access import (
    ReadablePlan,
    plan_version,
    plan_versions,
    shared_plan,
    shared_plans_page,
)
from tripmesh_gateway.api.schemas import (
    Accepted,
    CancelBody,
    DecisionBody,
    PlanCreateBody,
    PlanOut,
    PlanPage,
    PlanUpdateBody,
    VersionList,
)
from tripmesh_gateway.api.sharing_schemas import SharedPlanOut, SharedPlanPage
from tripmesh_gateway.commands import accept_plan, send_command
from tripmesh_gateway.domain import FieldError, command_message_id, resolve_places
from tripmesh_gateway.limits import enforce_active_plan_cap
from tripmesh_gateway.store import PlanIndexRow
from tripmesh_gateway.views import get_plan, list_plans, plan_out, planner_view, stored_request

router = APIRouter(prefix="/plans", tags=["plans"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    404: {"description": "No such plan among yours"},
    422: {"description": "Invalid request; `errors` names each field"},
    503: {"description": "The bus or a service did not answer"},
}


def location(plan_id: str) -> str:
    return f"/api/v1/plans/{plan_id}"


RUNNING = frozenset({PlanStatus.PROCESSING, PlanStatus.AWAITING_APPROVAL})


async def refuse_while_running(runtime: RuntimeDep, row: PlanIndexRow) -> None:
    """`multitask_strategy: reject` (the default): 409 while a run of the plan is active.
    Checked here because the planner can only drop such a revision (it has no one to answer);
    a plan accepted but not yet stored by the planner has its first run still to come."""
    view = await planner_view(runtime, row)
    if view is None and row.published_at is None:
        raise not_found()
    if view is None or view.status in RUNNING:
        status_ = view.status.value if view is not None else "accepted"
        raise ApiProblem(
            409,
            "Conflict",
            f"the plan has an active run ({status_}); wait for it to finish, or send"
            " multitask_strategy 'enqueue' (run after it) or 'interrupt' (cancel it)",
            kind="run-active",
            plan_status=status_,
        )


def build_request(fields: dict[str, Any]) -> PlanRequest:
    try:
        return PlanRequest.model_validate(fields)
    except ValidationError as exc:
        raise validation_problem(field_errors(exc.errors())) from exc


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PlanOut,
    responses={
        **PROBLEMS,
        402: {"description": "LLM spend cap reached"},
        409: {"description": "Idempotency-Key of a deleted plan"},
        429: {"description": "Too many plans in progress (GATEWAY_MAX_ACTIVE_PLANS)"},
    },
)
async def create_plan(
    body: PlanCreateBody,
    user: CurrentUser,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PlanOut:
    """Accept a plan: destinations are resolved to real cities (422 with suggestions when a
    name is unknown or ambiguous), the command goes to the planner, progress comes as events
    at `/plans/{id}/events`."""
    resolved = await asyncio.to_thread(resolve_places, body.destinations, body.origin)
    if resolved.errors:
        raise validation_problem(resolved.errors, "some places could not be resolved")
    fields = body.model_dump(exclude={"plan_budget_usd"})
    request = build_request({**fields, "destinations": resolved.destinations, "origin": resolved.origin})
    await enforce_active_plan_cap(runtime, user.id, idempotency_key)
    acceptance = await accept_plan(
        runtime,
        user,
        body.model_dump(),
        request,
        idempotency_key=idempotency_key,
        plan_budget_usd=body.plan_budget_usd,
    )
    response.headers["Location"] = location(acceptance.row.plan_id)
    if acceptance.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return plan_out(acceptance.row, None)


@router.get("", response_model=PlanPage | SharedPlanPage, responses=PROBLEMS)
async def list_my_plans(
    user: CurrentUser,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    shared: Annotated[
        bool, Query(description="true: the plans others shared with you (read-only, no costs) instead")
    ] = False,
) -> PlanPage | SharedPlanPage:
    """Your plans, newest first; with `shared=true` the plans shared with you, newest share first."""
    if shared:
        return await shared_plans_page(runtime, user.id, limit, offset)
    return await list_plans(runtime, user.id, limit, offset)


@router.get("/{plan_id}", response_model=PlanOut | SharedPlanOut, responses=PROBLEMS)
async def read_plan(access: ReadablePlan, runtime: RuntimeDep) -> PlanOut | SharedPlanOut:
    """Yours (with costs), or shared with you (SharedPlanOut: read-only, no costs)."""
    if not access.is_owner:
        return await shared_plan(runtime, access.row)
    plan = await get_plan(runtime, access.row)
    if plan is None:
        raise not_found()
    return plan


@router.put(
    "/{plan_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={**PROBLEMS, 409: {"description": "multitask_strategy reject and a run is active"}},
)
async def revise_plan(
    body: PlanUpdateBody,
    row: OwnedPlan,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Start a new version: changed fields (others kept) and/or feedback for the planner.
    While a run is active `multitask_strategy` decides: `reject` (default) answers 409,
    `enqueue` runs the revision after it, `interrupt` cancels it and runs the revision."""
    changes = body.model_dump(exclude_unset=True, exclude={"feedback", "multitask_strategy"})
    if not changes and body.feedback is None:
        raise validation_problem([FieldError("body", "nothing to change: send fields or feedback")])
    current = stored_request(row).model_dump()
    if "destinations" in changes or changes.get("origin") is not None:
        resolved = await asyncio.to_thread(resolve_places, changes.get("destinations"), changes.get("origin"))
        if resolved.errors:
            raise validation_problem(resolved.errors, "some places could not be resolved")
        if "destinations" in changes:
            changes["destinations"] = resolved.destinations
        if changes.get("origin") is not None:
            changes["origin"] = resolved.origin
    merged = {**current, **changes}
    if merged["end_date"] < merged["start_date"]:
        raise validation_problem(
            [
                FieldError(
                    "end_date" if "end_date" in changes else "start_date",
                    "end_date must not be before start_date",
                )
            ]
        )
    request = build_request(merged)
    if body.multitask_strategy is MultitaskStrategy.REJECT:
        await refuse_while_running(runtime, row)
    command = PlanRevise(
        id=command_message_id("plan.revise", row.plan_id, idempotency_key) or new_id(),
        user_id=row.user_id,
        plan_id=row.plan_id,
        request=request,
        feedback=body.feedback,
        multitask_strategy=body.multitask_strategy,
    )
    await send_command(runtime, command, subjects.PLAN_CMD_REVISE)
    await runtime.store.update_request(row.plan_id, request.model_dump(mode="json"), request.title)
    response.headers["Location"] = location(row.plan_id)
    return Accepted(plan_id=row.plan_id, command=command.type, message_id=command.id)


@router.post(
    "/{plan_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, responses=PROBLEMS
)
async def cancel_plan(
    row: OwnedPlan,
    runtime: RuntimeDep,
    body: CancelBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    command = PlanCancel(
        id=command_message_id("plan.cancel", row.plan_id, idempotency_key) or new_id(),
        user_id=row.user_id,
        plan_id=row.plan_id,
        reason=body.reason if body else None,
    )
    await send_command(runtime, command, subjects.PLAN_CMD_CANCEL)
    return Accepted(plan_id=row.plan_id, command=command.type, message_id=command.id)


@router.post(
    "/{plan_id}/decision", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, responses=PROBLEMS
)
async def decide_plan(
    body: DecisionBody,
    row: OwnedPlan,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Approve or reject a plan that is awaiting approval."""
    command = PlanDecide(
        id=command_message_id("plan.decide", row.plan_id, idempotency_key) or new_id(),
        user_id=row.user_id,
        plan_id=row.plan_id,
        approve=body.approve,
    )
    await send_command(runtime, command, subjects.PLAN_CMD_DECIDE)
    return Accepted(plan_id=row.plan_id, command=command.type, message_id=command.id)


@router.delete("/{plan_id}", status_code=status.HTTP_204_NO_CONTENT, responses=PROBLEMS)
async def delete_plan(row: OwnedPlan, runtime: RuntimeDep) -> Response:
    # One delete per plan ever: a deterministic id makes a retried delete a duplicate.
    command = PlanDelete(
        id=stable_id("gateway", "plan.delete", row.plan_id), user_id=row.user_id, plan_id=row.plan_id
    )
    await send_command(runtime, command, subjects.PLAN_CMD_DELETE)
    await runtime.store.mark_deleted(row.plan_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{plan_id}/versions", response_model=VersionList, responses=PROBLEMS)
async def list_versions(access: ReadablePlan, runtime: RuntimeDep) -> VersionList:
    return await plan_versions(runtime, access.row, redact=not access.is_owner)


@router.get("/{plan_id}/versions/{version}", response_model=PlanVersionView, responses=PROBLEMS)
async def read_version(
    access: ReadablePlan, runtime: RuntimeDep, version: Annotated[int, Path(ge=1, le=1_000_000)]
) -> PlanVersionView:
    return await plan_version(runtime, access.row, version, redact=not access.is_owner)
