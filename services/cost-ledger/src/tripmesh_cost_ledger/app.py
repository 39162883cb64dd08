"""The cost-ledger process: the usage consumer, the `svc.ledger.*` responders, ops endpoints."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from tripmesh_contracts.streams import LEDGER_USAGE
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.lag import start_lag_poller, stop_lag_poller
from tripmesh_kit.logging import get_logger
from tripmesh_kit.ops import nats_check, ops_router
from tripmesh_kit.pg import apply_migrations, load_migrations, make_pool, pg_check
from tripmesh_kit.telemetry import configure_tracing

from tripmesh_cost_ledger.alerts_store import AlertStore
from tripmesh_cost_ledger.budget_queries import BudgetQueries
from tripmesh_cost_ledger.handlers import register_handlers
from tripmesh_cost_ledger.ingest import BatchIngestor
from tripmesh_cost_ledger.puller import UsagePuller
from tripmesh_cost_ledger.queries import LedgerQueries
from tripmesh_cost_ledger.reservations import ReservationStore
from tripmesh_cost_ledger.settings import Settings
from tripmesh_cost_ledger.store import SCHEMA, LedgerStore
from tripmesh_cost_ledger.sweeper import LedgerSweeper, publish_alerts

log = get_logger(__name__)


async def migrate(database_url: str) -> int:
    return await apply_migrations(database_url, SCHEMA, load_migrations("tripmesh_cost_ledger"))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # before the broker and pools exist: they pick up the middleware and instrumentation
    configure_tracing(
        settings.trace_service_name, settings.otel_exporter_otlp_endpoint, distribution="cost-ledger"
    )
    # FastStream's own logger writes INFO lines in its own (non-JSON) format for every
    # request; a stdlib logger without handlers leaves it to configure_logging's WARNING level.
    broker = make_broker(
        settings.nats_url,
        settings.service_name,
        graceful_timeout=settings.drain_timeout_seconds,
        logger=logging.getLogger("tripmesh.faststream"),
    )
    bus = Bus(broker)
    # autocommit: a lone statement (settle, reads) costs one round trip, not three; the
    # reserve, ingest and expiry each open their own `conn.transaction()` (#13)
    pool = make_pool(
        settings.database_url, name="cost-ledger", max_size=settings.db_pool_size, autocommit=True
    )
    tier_caps = settings.tier_caps()
    store = LedgerStore(pool, tier_caps=tier_caps, plan_cap_default=settings.plan_cap_usd)
    reservations = ReservationStore(pool, tier_caps, settings.plan_cap_usd)
    alerts = AlertStore(pool)
    sweeper = LedgerSweeper(bus, reservations, alerts, interval_seconds=settings.sweep_interval_seconds)

    async def publish_new_alerts() -> None:
        await publish_alerts(bus, alerts, await alerts.unpublished())

    ingestor = BatchIngestor(store, bus, on_alerts=publish_new_alerts)
    queries = LedgerQueries(store, tier_caps)
    budgets = BudgetQueries(reservations, alerts, tier_caps, settings.plan_cap_usd)
    puller = UsagePuller(
        ingestor,
        LEDGER_USAGE,
        batch_size=settings.batch_size,
        window_seconds=settings.batch_window_seconds,
        concurrency=settings.ingest_concurrency,
    )
    register_handlers(broker, queries, budgets)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await migrate(settings.database_url)
        await pool.open()
        try:
            await broker.connect()
            if settings.provision_streams:
                await provision(bus.js)
            await broker.start()
            await puller.start(bus.nc)
            sweeper.start()
            lag = start_lag_poller(lambda: bus.js, [LEDGER_USAGE])
            log.info(
                "cost_ledger_started",
                batch_size=settings.batch_size,
                batch_window_seconds=settings.batch_window_seconds,
                ingest_concurrency=settings.ingest_concurrency,
            )
            try:
                yield
            finally:
                # drain: stop fetching, finish the batch in hand, then the in-flight requests
                await stop_lag_poller(lag)
                await sweeper.stop()
                await puller.stop(settings.drain_timeout_seconds)
                await broker.stop()
        finally:
            await pool.close()

    async def postgres_ready() -> None:
        await pg_check(pool)

    app = FastAPI(title="tripmesh cost-ledger", lifespan=lifespan)
    app.include_router(
        ops_router(
            {
                "nats": nats_check(lambda: broker._connection),
                "postgres": postgres_ready,
            }
        )
    )
    app.state.settings = settings
    app.state.broker = broker
    app.state.store = store
    app.state.ingestor = ingestor
    app.state.puller = puller
    app.state.reservations = reservations
    app.state.sweeper = sweeper
    return app
