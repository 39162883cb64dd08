"""Rebuild the collections from the event history: drop them, recreate them for the configured
embedder, and replay PLAN_CHANGES from its first message through an ordered consumer.

PLAN_CHANGES keeps the last message of every plan (`max_msgs_per_subject=1`), so the replay
holds each plan's latest version (or its deletion) and ends with the points the live consumer
wrote. It stops at the stream's last sequence as of its start; anything published later is
applied by the live consumer (the version guard makes the overlap harmless).

Local mode locks the storage folder: run it while the service is stopped. Against a server,
stop the service (or accept that searches see the collections fill up again).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from pydantic import ValidationError
from tripmesh_contracts import streams, subjects
from tripmesh_contracts.messages import PlanChanged
from tripmesh_kit.bus import connect
from tripmesh_kit.logging import get_logger

from tripmesh_vector_sync.collections import CollectionNames, ensure_collections
from tripmesh_vector_sync.embedders import Embedder, build_embedder
from tripmesh_vector_sync.settings import Settings
from tripmesh_vector_sync.store import VectorStore, open_client
from tripmesh_vector_sync.sync import Outcome, PlanSync

log = get_logger(__name__)


@dataclass
class ReindexReport:
    embedder: str
    last_sequence: int = 0
    replayed: int = 0
    undecodable: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def _apply(sync: PlanSync, batch: list[Msg], report: ReindexReport) -> None:
    changes: list[PlanChanged] = []
    for msg in batch:
        try:
            changes.append(PlanChanged.model_validate_json(msg.data))
        except ValidationError:
            # the live consumer dead-lettered it already; a rebuild just passes over it
            report.undecodable += 1
    vectors = await sync.prepare(changes)
    for change in changes:
        outcome: Outcome = await sync.apply(change, vectors, observe_lag=False)
        report.outcomes[outcome.value] = report.outcomes.get(outcome.value, 0) + 1


async def replay(
    js: JetStreamContext,
    sync: PlanSync,
    report: ReindexReport,
    *,
    batch_size: int = 64,
    idle_timeout: float = 10.0,
) -> None:
    info = await js.stream_info(streams.PLAN_CHANGES.name)
    report.last_sequence = info.state.last_seq
    if info.state.messages == 0:
        return
    sub = await js.subscribe(
        subjects.PLAN_CHANGED_ALL,
        stream=streams.PLAN_CHANGES.name,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.ALL,
    )
    try:
        batch: list[Msg] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_timeout)
            except NatsTimeoutError:
                # messages up to last_seq were purged meanwhile (or the server went quiet)
                log.warning("reindex_stream_idle", seen=report.replayed, last=report.last_sequence)
                break
            batch.append(msg)
            report.replayed += 1
            done = msg.metadata.sequence.stream >= report.last_sequence
            if len(batch) >= batch_size or done:
                await _apply(sync, batch, report)
                batch = []
            if done:
                break
        if batch:
            await _apply(sync, batch, report)
    finally:
        await sub.unsubscribe()


async def rebuild(
    store: VectorStore, sync: PlanSync, js: JetStreamContext, *, batch_size: int = 64
) -> ReindexReport:
    """Drop and recreate the collections for `sync.embedder`, then replay PLAN_CHANGES."""
    started = time.perf_counter()
    report = ReindexReport(embedder=sync.embedder.name)
    await ensure_collections(store.client, store.names, sync.embedder, recreate=True)
    await replay(js, sync, report, batch_size=batch_size)
    for name in store.names:
        report.points[name] = await store.count(name)
    report.seconds = round(time.perf_counter() - started, 3)
    log.info("reindex_done", **{k: v for k, v in report.as_dict().items() if k != "embedder"})
    return report


async def run_reindex(settings: Settings, embedder: Embedder | None = None) -> ReindexReport:
    """The `reindex` command: its own Qdrant client and NATS connection."""
    chosen = embedder if embedder is not None else await asyncio.to_thread(build_embedder, settings)
    store = VectorStore(
        open_client(
            settings.qdrant_url,
            str(settings.resolved_qdrant_path()),
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            timeout=settings.qdrant_timeout_seconds,
        ),
        CollectionNames.with_prefix(settings.collection_prefix),
    )
    nc = await connect(settings.nats_url, f"{settings.service_name}-reindex")
    try:
        sync = PlanSync(store, chosen, embedder_label=settings.resolved_embedder().value)
        return await rebuild(store, sync, nc.jetstream(), batch_size=settings.reindex_batch_size)
    finally:
        await nc.close()
        await store.close()
