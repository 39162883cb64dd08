"""The Qdrant collections vector-sync owns, created idempotently, each recording its embedder.

- `plans`: one point per plan (UUID5 of the plan id), the plan's latest version.
- `locations`: one point per distinct place (name + country); no tenant data.
- `preferences`: one point per (plan, stated preference), with the plan's user and version.
- `plan_tombstones`: vector-less; the version at which a plan was deleted, so a late, older
  change can never bring a deleted plan back.

Every vector collection stores `{"embedder": name, "dim": dim, "schema": N}` as its Qdrant
collection metadata. A collection built by another embedder (or without that record) is a
mismatch: start-up refuses it unless told to rebuild (vectors are never mixed).
Needs a Qdrant server >= 1.16 (collection metadata, conditional upserts) or local mode.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from tripmesh_vector_sync.embedders import Embedder

SCHEMA_VERSION = 1


class EmbedderMismatchError(RuntimeError):
    """The stored collections were built by another embedder (or another schema)."""


@dataclass(frozen=True)
class CollectionNames:
    plans: str
    locations: str
    preferences: str
    tombstones: str

    @classmethod
    def with_prefix(cls, prefix: str = "") -> CollectionNames:
        return cls(f"{prefix}plans", f"{prefix}locations", f"{prefix}preferences", f"{prefix}plan_tombstones")

    def vector_collections(self) -> tuple[str, ...]:
        return (self.plans, self.locations, self.preferences)

    def __iter__(self) -> Iterator[str]:
        return iter((*self.vector_collections(), self.tombstones))


def fingerprint(embedder: Embedder) -> dict[str, Any]:
    return {"embedder": embedder.name, "dim": embedder.dim, "schema": SCHEMA_VERSION}


_KEYWORD = models.PayloadSchemaType.KEYWORD
_TENANT = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)

PAYLOAD_INDEXES: dict[str, dict[str, Any]] = {
    "plans": {
        "user_id": _TENANT,
        "plan_id": _KEYWORD,
        "countries": _KEYWORD,
        "status": _KEYWORD,
        "start_date": models.PayloadSchemaType.DATETIME,
        "end_date": models.PayloadSchemaType.DATETIME,
        "budget_total": models.PayloadSchemaType.FLOAT,
        "version": models.PayloadSchemaType.INTEGER,
    },
    "preferences": {
        "user_id": _TENANT,
        "plan_id": _KEYWORD,
        "version": models.PayloadSchemaType.INTEGER,
    },
    "locations": {"country": _KEYWORD},
    "plan_tombstones": {"plan_id": _KEYWORD},
}


async def _metadata_of(client: AsyncQdrantClient, name: str) -> tuple[dict[str, Any], int | None]:
    info = await client.get_collection(name)
    vectors = info.config.params.vectors
    size = vectors.size if isinstance(vectors, models.VectorParams) else None
    return dict(info.config.metadata or {}), size


async def mismatches(client: AsyncQdrantClient, names: CollectionNames, embedder: Embedder) -> list[str]:
    """Why the existing collections cannot take this embedder's vectors ([] = they can)."""
    wanted = fingerprint(embedder)
    problems: list[str] = []
    for name in names.vector_collections():
        if not await client.collection_exists(name):
            continue
        recorded, size = await _metadata_of(client, name)
        stored = {k: recorded.get(k) for k in wanted}
        if stored != wanted or size != embedder.dim:
            problems.append(f"{name}: built by {stored} (size {size}), configured {wanted}")
    return problems


async def ensure_collections(
    client: AsyncQdrantClient, names: CollectionNames, embedder: Embedder, *, recreate: bool = False
) -> list[str]:
    """Create what is missing (idempotent); refuse collections of another embedder.

    `recreate=True` drops and recreates all of them (the reindex path). Returns the names of
    the collections created.
    """
    if recreate:
        for name in names:
            if await client.collection_exists(name):
                await client.delete_collection(name)
    else:
        problems = await mismatches(client, names, embedder)
        if problems:
            raise EmbedderMismatchError(
                "collections were built by another embedder; vectors are never mixed. Run "
                "`python -m tripmesh_vector_sync reindex` (or set VECTOR_SYNC_REINDEX_ON_"
                "MISMATCH=true) to rebuild them from PLAN_CHANGES: " + "; ".join(problems)
            )
    created: list[str] = []
    for name in names.vector_collections():
        if not await client.collection_exists(name):
            await _create(
                client,
                name,
                models.VectorParams(size=embedder.dim, distance=models.Distance.COSINE),
                fingerprint(embedder),
            )
            created.append(name)
    if not await client.collection_exists(names.tombstones):
        await _create(client, names.tombstones, {}, {"schema": SCHEMA_VERSION})
        created.append(names.tombstones)
    await _ensure_indexes(client, names)
    return created


async def _create(
    client: AsyncQdrantClient,
    name: str,
    vectors: models.VectorParams | dict[str, models.VectorParams],
    metadata: dict[str, Any],
) -> None:
    try:
        await client.create_collection(name, vectors_config=vectors, metadata=metadata)
    except Exception:
        # another replica created it between our check and our create: fine if it exists now
        if not await client.collection_exists(name):
            raise


async def _ensure_indexes(client: AsyncQdrantClient, names: CollectionNames) -> None:
    by_role = {
        "plans": names.plans,
        "preferences": names.preferences,
        "locations": names.locations,
        "plan_tombstones": names.tombstones,
    }
    with warnings.catch_warnings():
        # local mode scans linearly and warns that indexes have no effect there: same code
        # path either way, the indexes matter on a server
        warnings.filterwarnings("ignore", message="Payload indexes have no effect")
        for role, fields in PAYLOAD_INDEXES.items():
            for field, schema in fields.items():
                # idempotent on the server: re-creating an existing index is a no-op
                await client.create_payload_index(by_role[role], field, field_schema=schema)
