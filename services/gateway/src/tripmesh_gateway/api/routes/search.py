"""Similar plans and free-text search, from vector-sync (svc.vectors.*), always scoped to the
caller: user_id comes from the token, and hits are checked against the caller's own plans.
Search also finds plans shared with the caller whose owner allowed it (`searchable` share):
one tenant-filtered search per such owner, keeping only the shared plans' hits."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from tripmesh_contracts import PlanStatus, subjects
from tripmesh_contracts.rpc import (
    SearchFilters,
    SearchHit,
    SearchPlansRequest,
    SearchReply,
    SimilarPlansRequest,
)

from tripmesh_gateway.api.deps import CurrentUser, OwnedPlan, RuntimeDep
from tripmesh_gateway.api.plan_access import share_store
from tripmesh_gateway.runtime import Runtime

router = APIRouter(tags=["search"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    404: {"description": "No such plan among yours"},
    503: {"description": "vector-sync did not answer"},
}


def search_filters(
    country: Annotated[str | None, Query(min_length=2, max_length=2, description="ISO country code")] = None,
    start_after: date | None = None,
    end_before: date | None = None,
    budget_min: Annotated[Decimal | None, Query(ge=0)] = None,
    budget_max: Annotated[Decimal | None, Query(ge=0)] = None,
    status: PlanStatus | None = None,
) -> SearchFilters:
    return SearchFilters(
        country=country.upper() if country else None,
        start_after=start_after,
        end_before=end_before,
        budget_min=budget_min,
        budget_max=budget_max,
        status=status,
    )


Filters = Annotated[SearchFilters, Depends(search_filters)]


async def only_own_hits(runtime: Runtime, user_id: str, reply: SearchReply) -> SearchReply:
    """Defence in depth behind vector-sync's tenant filter: drop any hit that is not one of the
    caller's live plans (a deleted plan may linger in the index for a moment)."""
    own = await runtime.store.owned_plan_ids(user_id, [hit.plan_id for hit in reply.hits])
    return reply.model_copy(update={"hits": [hit for hit in reply.hits if hit.plan_id in own]})


@router.get(
    "/plans/{plan_id}/similar",
    response_model=SearchReply,
    response_model_exclude={"error"},
    responses=PROBLEMS,
)
async def similar_plans(
    row: OwnedPlan,
    runtime: RuntimeDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SearchReply:
    request = SimilarPlansRequest(user_id=row.user_id, plan_id=row.plan_id, limit=limit, filters=filters)
    reply = await runtime.rpc.call(subjects.SVC_VECTORS_SIMILAR, request, SearchReply)
    return await only_own_hits(runtime, row.user_id, reply)


@router.get(
    "/search/plans",
    response_model=SearchReply,
    response_model_exclude={"error"},
    responses=PROBLEMS,
)
async def search_plans(
    user: CurrentUser,
    runtime: RuntimeDep,
    filters: Filters,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SearchReply:
    """Your plans, plus plans shared with you whose owner made the share `searchable`."""
    request = SearchPlansRequest(user_id=user.id, q=q, limit=limit, filters=filters)
    reply, shared = await asyncio.gather(
        runtime.rpc.call(subjects.SVC_VECTORS_SEARCH, request, SearchReply),
        shared_hits(runtime, user.id, q, filters),
    )
    own = await only_own_hits(runtime, user.id, reply)
    if not shared:
        return own
    hits = sorted([*own.hits, *shared], key=lambda hit: hit.score, reverse=True)[:limit]
    return own.model_copy(update={"hits": hits})


MAX_SHARING_OWNERS = 20
"""Owners whose searchable shares one search consults (their most recent shares first)."""


async def shared_hits(runtime: Runtime, reader_id: str, q: str, filters: SearchFilters) -> list[SearchHit]:
    """Hits among the plans shared with `reader_id` as searchable, each asked of vector-sync
    under its owner's tenant filter; only the shared plans' hits are kept."""
    by_owner = await share_store(runtime).searchable_for(reader_id, limit=500)
    owners = list(by_owner)[:MAX_SHARING_OWNERS]
    replies = await asyncio.gather(
        *(
            runtime.rpc.call(
                subjects.SVC_VECTORS_SEARCH,
                SearchPlansRequest(user_id=owner, q=q, limit=50, filters=filters),
                SearchReply,
            )
            for owner in owners
        )
    )
    return [
        hit
        for owner, reply in zip(owners, replies, strict=True)
        for hit in reply.hits
        if hit.plan_id in by_owner[owner]
    ]
