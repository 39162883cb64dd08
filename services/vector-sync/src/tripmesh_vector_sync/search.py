"""`svc.vectors.similar` and `svc.vectors.search`: tenant-filtered similarity over plans.

Every query goes through a `TenantFilter` built from the request's `user_id` (filters.py);
hits are checked against the caller once more before they leave, as a second line of
defence that logs loudly if the first ever failed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from qdrant_client import models
from tripmesh_contracts.rpc import (
    RpcError,
    SearchHit,
    SearchPlansRequest,
    SearchReply,
    SimilarPlansRequest,
)
from tripmesh_kit.logging import get_logger

from tripmesh_vector_sync import metrics
from tripmesh_vector_sync.documents import matched_terms, query_terms, shared_fields
from tripmesh_vector_sync.embedders import Embedder
from tripmesh_vector_sync.filters import TenantFilter
from tripmesh_vector_sync.store import VectorStore

log = get_logger(__name__)


def _hit(point: models.ScoredPoint, matched: dict[str, Any]) -> SearchHit:
    payload = point.payload or {}
    return SearchHit(
        plan_id=payload["plan_id"],
        version=int(payload["version"]),
        title=str(payload.get("title", "")),
        score=float(point.score),
        destinations=list(payload.get("destinations", [])),
        matched=matched,
    )


def _own_only(points: list[models.ScoredPoint], user_id: str) -> list[models.ScoredPoint]:
    mine = [p for p in points if (p.payload or {}).get("user_id") == user_id]
    if len(mine) != len(points):
        log.error("tenant_filter_breach_blocked", dropped=len(points) - len(mine))
    return mine


class SearchService:
    def __init__(self, store: VectorStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    async def similar(self, request: SimilarPlansRequest) -> SearchReply:
        tenant = TenantFilter(request.user_id, request.filters, exclude_plan_id=request.plan_id)
        reference = await self.store.get_plan(request.plan_id, tenant, with_vector=True)
        if reference is None or not isinstance(reference.vector, list):
            # someone else's plan answers exactly like a missing one: no existence leak
            metrics.SEARCHES.labels(kind="similar", outcome="not_found").inc()
            return SearchReply(
                error=RpcError(
                    status=404, title="Plan not found", detail="no indexed plan with this id for this user"
                )
            )
        vector = [float(x) for x in reference.vector if isinstance(x, float | int)]
        points = _own_only(await self.store.search_plans(vector, tenant, request.limit), request.user_id)
        ref_payload = reference.payload or {}
        metrics.SEARCHES.labels(kind="similar", outcome="ok").inc()
        return SearchReply(hits=[_hit(p, shared_fields(ref_payload, p.payload or {})) for p in points])

    async def search(self, request: SearchPlansRequest) -> SearchReply:
        tenant = TenantFilter(request.user_id, request.filters)
        vector = (await asyncio.to_thread(self.embedder.embed, [request.q]))[0]
        points = _own_only(await self.store.search_plans(vector, tenant, request.limit), request.user_id)
        terms = query_terms(request.q)
        metrics.SEARCHES.labels(kind="search", outcome="ok").inc()
        return SearchReply(hits=[_hit(p, matched_terms(p.payload or {}, terms)) for p in points])
