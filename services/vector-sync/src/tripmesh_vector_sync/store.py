"""Qdrant adapter: the writes of the sync path and the tenant-filtered reads of search.

Version guard: a plan's point is only ever replaced by a higher version. The sync path reads
the stored version first and skips stale changes (cheap, saves embedding them), and the write
itself is conditional (`update_filter: version < new`), so even two replicas racing on one
plan against a Qdrant server cannot put an older version over a newer one. Deletion leaves a
tombstone (the deleted version) that blocks any later, older upsert; `reconcile` runs after
every write and repairs what a race between two replicas could leave (see sync.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from tripmesh_vector_sync.collections import CollectionNames
from tripmesh_vector_sync.documents import plan_point_id
from tripmesh_vector_sync.filters import TenantFilter


@dataclass(frozen=True)
class PlanState:
    version: int | None
    """Version of the stored plan point, None when there is none."""
    deleted_version: int | None
    """Version at which the plan was deleted (its tombstone), None when never deleted."""

    def newest_known(self) -> int:
        return max(self.version or 0, self.deleted_version or 0)


def _version_below(version: int) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="version", range=models.Range(lt=version))])


def _of_plan(plan_id: str) -> models.FieldCondition:
    return models.FieldCondition(key="plan_id", match=models.MatchValue(value=plan_id))


class VectorStore:
    def __init__(self, client: AsyncQdrantClient, names: CollectionNames) -> None:
        self.client = client
        self.names = names

    async def ping(self) -> None:
        await self.client.get_collections()

    async def close(self) -> None:
        await self.client.close()

    # --- sync path ----------------------------------------------------------------------

    async def plan_states(self, plan_ids: Sequence[str]) -> dict[str, PlanState]:
        ids = [plan_point_id(p) for p in dict.fromkeys(plan_ids)]
        if not ids:
            return {}
        points = await self.client.retrieve(self.names.plans, ids, with_payload=["plan_id", "version"])
        tombs = await self.client.retrieve(self.names.tombstones, ids, with_payload=["plan_id", "version"])
        versions = {str((p.payload or {})["plan_id"]): int((p.payload or {})["version"]) for p in points}
        deleted = {str((p.payload or {})["plan_id"]): int((p.payload or {})["version"]) for p in tombs}
        return {p: PlanState(versions.get(p), deleted.get(p)) for p in dict.fromkeys(plan_ids)}

    async def upsert_plan(
        self, plan_id: str, version: int, vector: list[float], payload: dict[str, Any]
    ) -> None:
        point = models.PointStruct(id=plan_point_id(plan_id), vector=vector, payload=payload)
        # inserted when absent; replaced only if the stored version is lower
        await self.client.upsert(self.names.plans, [point], wait=True, update_filter=_version_below(version))

    async def upsert_preferences(self, version: int, points: list[models.PointStruct]) -> None:
        if points:
            await self.client.upsert(
                self.names.preferences, points, wait=True, update_filter=_version_below(version + 1)
            )

    async def upsert_locations(self, points: list[models.PointStruct]) -> None:
        if points:
            await self.client.upsert(self.names.locations, points, wait=True)

    async def write_tombstone(self, plan_id: str, user_id: str, version: int, at: str) -> None:
        point = models.PointStruct(
            id=plan_point_id(plan_id),
            vector={},
            payload={"plan_id": plan_id, "user_id": user_id, "version": version, "deleted_at": at},
        )
        await self.client.upsert(
            self.names.tombstones, [point], wait=True, update_filter=_version_below(version + 1)
        )

    async def delete_plan_points(self, plan_id: str) -> None:
        await self.client.delete(
            self.names.plans, models.PointIdsList(points=[plan_point_id(plan_id)]), wait=True
        )
        await self.client.delete(
            self.names.preferences,
            models.FilterSelector(filter=models.Filter(must=[_of_plan(plan_id)])),
            wait=True,
        )

    async def reconcile(self, plan_id: str) -> PlanState:
        """Bring a plan's points to a consistent state, whatever order writes landed in:
        a tombstone at or above the plan's version removes the plan and its preferences;
        otherwise preferences of any other version than the plan point's are removed."""
        state = (await self.plan_states([plan_id]))[plan_id]
        if state.deleted_version is not None and (state.version or 0) <= state.deleted_version:
            await self.delete_plan_points(plan_id)
            return PlanState(None, state.deleted_version)
        if state.version is not None:
            await self.client.delete(
                self.names.preferences,
                models.FilterSelector(
                    filter=models.Filter(
                        must=[_of_plan(plan_id)],
                        must_not=[
                            models.FieldCondition(key="version", match=models.MatchValue(value=state.version))
                        ],
                    )
                ),
                wait=True,
            )
        return state

    # --- search path: every read of tenant data takes a TenantFilter ----------------------

    async def get_plan(
        self, plan_id: str, tenant: TenantFilter, *, with_vector: bool = False
    ) -> models.Record | None:
        """The plan's point if it belongs to the tenant, else None (same answer as missing)."""
        found = await self.client.retrieve(
            self.names.plans, [plan_point_id(plan_id)], with_payload=True, with_vectors=with_vector
        )
        if not found or (found[0].payload or {}).get("user_id") != tenant.user_id:
            return None
        return found[0]

    async def search_plans(
        self, vector: list[float], tenant: TenantFilter, limit: int
    ) -> list[models.ScoredPoint]:
        result = await self.client.query_points(
            self.names.plans, query=vector, query_filter=tenant.to_qdrant(), limit=limit, with_payload=True
        )
        return list(result.points)

    # --- whole collections (rebuild checks, tests, operators) -----------------------------

    async def scroll_all(self, collection: str, *, with_vectors: bool = True) -> list[models.Record]:
        records: list[models.Record] = []
        offset: models.ExtendedPointId | None = None
        while True:
            batch, offset = await self.client.scroll(
                collection, limit=256, offset=offset, with_payload=True, with_vectors=with_vectors
            )
            records.extend(batch)
            if offset is None:
                return records

    async def count(self, collection: str) -> int:
        return (await self.client.count(collection, exact=True)).count


def open_client(
    url: str | None, path: str, *, api_key: str | None = None, timeout: int = 10
) -> AsyncQdrantClient:
    """A server client when `url` is set, else embedded local storage at `path`.

    Local mode is single-process: it locks the folder, so only this service (or, while the
    service is stopped, the reindex command) may open it.
    """
    if url:
        return AsyncQdrantClient(url=url, api_key=api_key, timeout=timeout)
    return AsyncQdrantClient(path=path)


def is_qdrant_outage(exc: BaseException) -> bool:
    """The Qdrant server is unreachable or overloaded: pause and retry, never dead-letter."""
    if isinstance(exc, ResponseHandlingException | httpx.TransportError | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, UnexpectedResponse) and exc.status_code in (429, 502, 503, 504)
