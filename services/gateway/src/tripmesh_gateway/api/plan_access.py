"""Who may read a plan: its owner, a user it is shared with (a live share naming them), or
anyone holding a live link token. Everything else about a plan (changing it, its events,
costs, similar plans, its shares) stays behind `OwnedPlan`: 404 for everyone but the owner.

Readers get the planner's view asked with the *owner's* user id (the planner scopes every
read by user), turned into a SharedPlanOut: no costs, no models or tokens per agent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path
from tripmesh_contracts import subjects
from tripmesh_contracts.ids import UnsafeTokenError, check_token
from tripmesh_contracts.rpc import (
    PlanVersionReply,
    PlanVersionRequest,
    PlanVersionsReply,
    PlanVersionsRequest,
    PlanVersionView,
)

from tripmesh_gateway.api.deps import CurrentUser, RuntimeDep
from tripmesh_gateway.api.errors import ApiProblem, not_found
from tripmesh_gateway.api.schemas import VersionList
from tripmesh_gateway.api.sharing_schemas import SharedPlanOut, SharedPlanPage, shared_version, shared_view
from tripmesh_gateway.rpc import ServiceError
from tripmesh_gateway.runtime import Runtime
from tripmesh_gateway.shares import LINK_TOKEN_PREFIX, ShareStore
from tripmesh_gateway.store import PlanIndexRow
from tripmesh_gateway.views import plan_out, planner_view


def share_store(runtime: Runtime) -> ShareStore:
    return ShareStore(runtime.store.pool)


@dataclass(frozen=True)
class PlanAccess:
    row: PlanIndexRow
    is_owner: bool


async def readable_plan(plan_id: str, user: CurrentUser, runtime: RuntimeDep) -> PlanAccess:
    """The caller's plan, or one shared with the caller; 404 otherwise (also when it exists)."""
    try:
        check_token(plan_id)
    except UnsafeTokenError as exc:
        raise not_found() from exc
    row = await runtime.store.owned_plan(user.id, plan_id)
    if row is not None:
        return PlanAccess(row, is_owner=True)
    row = await share_store(runtime).plan_for_reader(user.id, plan_id)
    if row is not None:
        return PlanAccess(row, is_owner=False)
    raise not_found()


ReadablePlan = Annotated[PlanAccess, Depends(readable_plan)]


async def linked_plan(
    token: Annotated[str, Path(max_length=128, description="A link token from POST /plans/{id}/share")],
    runtime: RuntimeDep,
) -> PlanIndexRow:
    """The plan a live link token opens; 404 for an unknown, revoked or expired token."""
    if not token.startswith(LINK_TOKEN_PREFIX):
        raise not_found()
    row = await share_store(runtime).plan_for_token(token)
    if row is None:
        raise not_found()
    return row


LinkedPlan = Annotated[PlanIndexRow, Depends(linked_plan)]


async def shared_plan(runtime: Runtime, row: PlanIndexRow) -> SharedPlanOut:
    """A reader's view (the ledger is never asked: readers see no costs)."""
    return shared_view(plan_out(row, await planner_view(runtime, row)))


async def shared_plans_page(runtime: Runtime, reader_id: str, limit: int, offset: int) -> SharedPlanPage:
    rows, total = await share_store(runtime).shared_with(reader_id, limit, offset)
    items = await asyncio.gather(*(shared_plan(runtime, r) for r in rows))
    return SharedPlanPage(items=list(items), total=total, limit=limit, offset=offset)


async def plan_versions(runtime: Runtime, row: PlanIndexRow, *, redact: bool) -> VersionList:
    try:
        reply = await runtime.rpc.call(
            subjects.SVC_PLANNER_VERSIONS,
            PlanVersionsRequest(user_id=row.user_id, plan_id=row.plan_id),
            PlanVersionsReply,
        )
    except ServiceError as exc:
        if exc.error.status == 404:  # accepted, not stored by the planner yet: no versions
            return VersionList(items=[])
        raise
    return VersionList(items=[shared_version(v) for v in reply.items] if redact else reply.items)


async def plan_version(runtime: Runtime, row: PlanIndexRow, version: int, *, redact: bool) -> PlanVersionView:
    reply = await runtime.rpc.call(
        subjects.SVC_PLANNER_VERSION,
        PlanVersionRequest(user_id=row.user_id, plan_id=row.plan_id, version=version),
        PlanVersionReply,
    )
    if reply.version is None:
        raise ApiProblem(404, "Not Found", f"version {version} not found", kind="not-found")
    return shared_version(reply.version) if redact else reply.version
