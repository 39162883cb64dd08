"""The vector-sync process: the plan-change consumer, the search responders, the ops endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from tripmesh_contracts.streams import VECTOR_SYNC_CHANGES
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.lag import start_lag_poller, stop_lag_poller
from tripmesh_kit.logging import get_logger
from tripmesh_kit.ops import nats_check, ops_router
from tripmesh_kit.telemetry import configure_tracing

from tripmesh_vector_sync.collections import (
    CollectionNames,
    EmbedderMismatchError,
    ensure_collections,
)
from tripmesh_vector_sync.embedders import Embedder, build_embedder
from tripmesh_vector_sync.handlers import register_handlers
from tripmesh_vector_sync.reindex import rebuild
from tripmesh_vector_sync.search import SearchService
from tripmesh_vector_sync.settings import Settings
from tripmesh_vector_sync.store import VectorStore, open_client
from tripmesh_vector_sync.sync import PlanSync

log = get_logger(__name__)


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None) -> FastAPI:
    """`embedder` lets tests share one loaded model; the service builds it from settings."""
    settings = settings or Settings()
    # before the broker and pools exist: they pick up the middleware and instrumentation
    configure_tracing(
        settings.trace_service_name, settings.otel_exporter_otlp_endpoint, distribution="vector-sync"
    )
    embedder = embedder or build_embedder(settings)
    broker = make_broker(
        settings.nats_url, settings.service_name, graceful_timeout=settings.drain_timeout_seconds
    )
    bus = Bus(broker)
    api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    store = VectorStore(
        open_client(
            settings.qdrant_url,
            str(settings.resolved_qdrant_path()),
            api_key=api_key,
            timeout=settings.qdrant_timeout_seconds,
        ),
        CollectionNames.with_prefix(settings.collection_prefix),
    )
    sync = PlanSync(store, embedder, embedder_label=settings.resolved_embedder().value)
    search = SearchService(store, embedder)
    register_handlers(
        broker,
        bus,
        sync,
        search,
        fetch_timeout_seconds=settings.fetch_timeout_seconds,
        rpc_workers=settings.rpc_workers,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        lag: asyncio.Task[None] | None = None
        try:
            await broker.connect()
            if settings.provision_streams:
                await provision(bus.js)
            # a litellm embedder learns its size from the provider: not on the event loop
            await asyncio.to_thread(lambda: embedder.dim)
            try:
                created = await ensure_collections(store.client, store.names, embedder)
            except EmbedderMismatchError:
                if not settings.reindex_on_mismatch:
                    raise
                log.warning("embedder_changed_reindexing", embedder=embedder.name)
                await rebuild(store, sync, bus.js, batch_size=settings.reindex_batch_size)
                created = []
            log.info(
                "collections_ready",
                created=created,
                embedder=embedder.name,
                dim=embedder.dim,
                qdrant=settings.qdrant_url or "local",
            )
            await broker.start()
            lag = start_lag_poller(lambda: bus.js, [VECTOR_SYNC_CHANGES])
            yield
        finally:
            await stop_lag_poller(lag)
            # stops fetching and waits for the in-flight batch (graceful_timeout) = drain; also
            # closes the connection when start-up failed half-way (e.g. embedder mismatch)
            await broker.stop()
            await store.close()

    app = FastAPI(title="tripmesh vector-sync", lifespan=lifespan)
    app.include_router(
        ops_router(
            {
                "nats": nats_check(lambda: broker._connection),
                "qdrant": store.ping,
            }
        )
    )
    app.state.settings = settings
    app.state.broker = broker
    app.state.store = store
    app.state.sync = sync
    app.state.embedder = embedder
    return app
