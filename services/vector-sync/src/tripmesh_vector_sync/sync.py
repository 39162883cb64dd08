"""Apply `plans.changed` to Qdrant: embed the plan's snapshot and upsert, or delete.

Order of writes for a new version: locations, preferences, then the plan point, then
`reconcile`. The plan point is the commit marker: once it holds version v, everything v needs
is written, so a redelivered v (or any older one) is skipped without embedding; it still runs
`reconcile`, which finishes a write a crash interrupted (stale preferences, a tombstone that
must win).

Why "read the version, then write" is safe:
- one service process pulls and handles the durable's messages one at a time (handlers.py), so
  within a replica nothing interleaves between the read and the write;
- across replicas (a Qdrant server shared by several), the plan write is conditional on the
  server (`version < new`), the tombstone is written before the points are deleted, and every
  writer reconciles *after* its own write: whichever finishes last sees the final versions and
  removes what a stale writer left. An older version never ends up over a newer one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from qdrant_client import models
from tripmesh_contracts.messages import PlanChanged, PlanSnapshot
from tripmesh_kit import telemetry
from tripmesh_kit.consume import PermanentError
from tripmesh_kit.logging import get_logger

from tripmesh_vector_sync import metrics
from tripmesh_vector_sync.documents import (
    CountryResolver,
    Location,
    location_point_id,
    plan_locations,
    plan_payload,
    plan_text,
    preference_lines,
    preference_point_id,
)
from tripmesh_vector_sync.embedders import Embedder
from tripmesh_vector_sync.store import VectorStore

log = get_logger(__name__)

Vectors = dict[str, list[float]]


class Outcome(StrEnum):
    WRITTEN = "written"
    DELETED = "deleted"
    STALE = "stale"


@dataclass(frozen=True)
class PlanDocuments:
    plan_text: str
    locations: list[Location]
    preferences: list[tuple[str, str]]

    def texts(self) -> list[str]:
        return [
            self.plan_text,
            *(loc.text for loc in self.locations),
            *(text for _, text in self.preferences),
        ]


def resolve_with_places(name: str, countries: list[str]) -> str | None:
    """Which of a multi-country plan's countries a place is in, by the places library.
    Imported lazily: its city index costs about a second to build, once per process."""
    from tripmesh_places import ResolutionStatus, resolve

    for country in countries:
        if resolve(name, country_hint=country).status is ResolutionStatus.RESOLVED:
            return country
    return None


class PlanSync:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        *,
        embedder_label: str,
        resolve_country: CountryResolver = resolve_with_places,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.embedder_label = embedder_label
        self.resolve_country = resolve_country

    def documents(self, snapshot: PlanSnapshot) -> PlanDocuments:
        return PlanDocuments(
            plan_text(snapshot),
            plan_locations(snapshot, self.resolve_country),
            preference_lines(snapshot.preferences),
        )

    def _embed_blocking(self, texts: list[str]) -> Vectors:
        unique = list(dict.fromkeys(texts))
        if not unique:
            return {}
        started = time.perf_counter()
        vectors = self.embedder.embed(unique)
        per_text = (time.perf_counter() - started) / len(unique)
        metrics.EMBED_SECONDS_PER_TEXT.labels(embedder=self.embedder_label).observe(per_text)
        return dict(zip(unique, vectors, strict=True))

    def _documents_and_vectors(self, snapshot: PlanSnapshot, known: Vectors) -> tuple[PlanDocuments, Vectors]:
        docs = self.documents(snapshot)
        missing = [t for t in docs.texts() if t not in known]
        return docs, {**known, **self._embed_blocking(missing)}

    async def prepare(self, changes: Sequence[PlanChanged]) -> Vectors:
        """Embed, in one call, every text of the changes that will be written (the rebuild's
        batches; `apply` embeds whatever this did not)."""
        states = await self.store.plan_states([c.plan_id for c in changes])
        snapshots = [
            c.snapshot
            for c in changes
            if not c.deleted and c.snapshot is not None and c.version > states[c.plan_id].newest_known()
        ]

        def embed_all() -> Vectors:
            return self._embed_blocking([t for s in snapshots for t in self.documents(s).texts()])

        return await asyncio.to_thread(embed_all)

    async def apply(
        self, change: PlanChanged, vectors: Vectors | None = None, *, observe_lag: bool = True
    ) -> Outcome:
        operation = "delete" if change.deleted else "upsert"
        attrs: dict[str, telemetry.AttrValue] = {
            "plan_id": change.plan_id,
            "user_id": change.user_id,
            "tripmesh.plan_version": change.version,
        }
        with telemetry.span(f"vectors.{operation}", attrs) as span:
            if change.deleted:
                outcome = await self._delete(change)
            elif change.snapshot is None:
                raise PermanentError("plan change without a snapshot and not a deletion")
            else:
                outcome = await self._upsert(change, change.snapshot, vectors or {})
            if span is not None:
                span.set_attribute("tripmesh.outcome", outcome.value)
        metrics.CHANGES.labels(outcome=outcome.value).inc()
        if observe_lag and outcome is not Outcome.STALE:
            lag = (datetime.now(UTC) - change.occurred_at).total_seconds()
            metrics.LAG_SECONDS.observe(max(lag, 0.0))
        log.debug(
            "plan_change_applied", plan_id=change.plan_id, version=change.version, outcome=outcome.value
        )
        return outcome

    async def _delete(self, change: PlanChanged) -> Outcome:
        # tombstone first: a concurrent older upsert that lands after it sees it (reconcile)
        await self.store.write_tombstone(
            change.plan_id, change.user_id, change.version, change.occurred_at.isoformat()
        )
        await self.store.delete_plan_points(change.plan_id)
        await self.store.reconcile(change.plan_id)
        return Outcome.DELETED

    async def _upsert(self, change: PlanChanged, snapshot: PlanSnapshot, known: Vectors) -> Outcome:
        state = (await self.store.plan_states([change.plan_id]))[change.plan_id]
        if change.version <= state.newest_known():
            await self.store.reconcile(change.plan_id)
            return Outcome.STALE
        docs, vectors = await asyncio.to_thread(self._documents_and_vectors, snapshot, known)
        await self.store.upsert_locations(
            [
                models.PointStruct(
                    id=location_point_id(loc.name, loc.country),
                    vector=vectors[loc.text],
                    payload={"name": loc.name, "country": loc.country},
                )
                for loc in docs.locations
            ]
        )
        await self.store.upsert_preferences(
            change.version,
            [
                models.PointStruct(
                    id=preference_point_id(change.plan_id, key),
                    vector=vectors[text],
                    payload={
                        "user_id": change.user_id,
                        "plan_id": change.plan_id,
                        "version": change.version,
                        "key": key,
                        "text": text,
                    },
                )
                for key, text in docs.preferences
            ],
        )
        await self.store.upsert_plan(
            change.plan_id, change.version, vectors[docs.plan_text], plan_payload(change, snapshot)
        )
        final = await self.store.reconcile(change.plan_id)
        return Outcome.WRITTEN if final.version == change.version else Outcome.STALE
