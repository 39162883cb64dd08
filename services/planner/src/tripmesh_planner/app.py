"""The planner process: wiring, start-up and drain. The only place that reads the env."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from tripmesh_contracts import streams
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.lag import start_lag_poller, stop_lag_poller
from tripmesh_kit.logging import get_logger
from tripmesh_kit.ops import nats_check, ops_router
from tripmesh_kit.pg import apply_migrations, load_migrations, make_pool, pg_check
from tripmesh_kit.telemetry import configure_tracing

from tripmesh_planner.checkpoints import make_checkpoint_pool, setup_checkpoints
from tripmesh_planner.commands import Commands
from tripmesh_planner.engine import Engine
from tripmesh_planner.events import Emitter
from tripmesh_planner.executions import Executions
from tripmesh_planner.graph import build_graph
from tripmesh_planner.handlers import register_handlers
from tripmesh_planner.locks import PlanLocks, make_lock_pool
from tripmesh_planner.reads import Reads
from tripmesh_planner.results import Results
from tripmesh_planner.runtime import Runtime
from tripmesh_planner.settings import Settings
from tripmesh_planner.store import Store
from tripmesh_planner.sweeper import Sweeper

log = get_logger(__name__)


@dataclass
class Running:
    """What exists only once started (the saver needs a running event loop)."""

    engine: Engine
    commands: Commands
    results: Results
    sweeper: Sweeper


class PlannerService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        dsn = settings.database_url
        # graceful_timeout: on shutdown the broker stops fetching and waits this long for the
        # handlers in flight (SIGTERM drain). FastStream's INFO access lines go to a stdlib
        # logger that follows the process level, so the JSON log stays ours.
        self.broker = make_broker(
            settings.nats_url,
            "planner",
            graceful_timeout=settings.drain_timeout_seconds,
            logger=logging.getLogger("faststream.planner"),
        )
        self.bus = Bus(self.broker)
        # autocommit: a lone read or update costs one round trip, not three (BEGIN, it,
        # COMMIT); every multi-statement write in store.py / executions.py opens its own
        # `conn.transaction()` (#13)
        self.pool = make_pool(dsn, name="planner", max_size=settings.db_pool_size, autocommit=True)
        self.lock_pool = make_lock_pool(
            dsn, size=settings.lock_pool_size, timeout_seconds=settings.lock_timeout_seconds
        )
        self.checkpoint_pool = make_checkpoint_pool(
            dsn, settings.checkpoint_schema, settings.checkpoint_pool_size
        )
        self.store = Store(self.pool, settings.db_schema)
        self.executions = Executions(self.pool, settings.db_schema)
        self.reads = Reads(self.pool, settings.db_schema)
        self.rt = Runtime(settings, self.bus, self.store, self.executions, Emitter(self.bus, self.store))
        self._running: Running | None = None
        self._lag: asyncio.Task[None] | None = None
        register_handlers(self)

    @property
    def running(self) -> Running:
        if self._running is None:
            raise RuntimeError("planner not started")
        return self._running

    async def start(self, *, consume: bool = True, sweep: bool = True) -> None:
        settings = self.settings
        await apply_migrations(settings.database_url, settings.db_schema, load_migrations("tripmesh_planner"))
        await setup_checkpoints(settings.database_url, settings.checkpoint_schema)
        for pool in (self.pool, self.lock_pool, self.checkpoint_pool):
            await pool.open()
        saver = AsyncPostgresSaver(self.checkpoint_pool)  # type: ignore[arg-type]
        engine = Engine(self.rt, build_graph(self.rt, saver), PlanLocks(self.lock_pool))
        self._running = Running(engine, Commands(engine), Results(engine), Sweeper(engine))
        await self.broker.connect()
        if settings.provision_streams:
            await provision(self.bus.js)
        if consume:
            await self.broker.start()
            # the planner also exports the DLQ depth: one exporter for the whole system
            # (deploy/observability/README.md says why this one)
            self._lag = start_lag_poller(
                lambda: self.bus.js, [streams.PLANNER_COMMANDS, streams.PLANNER_RESULTS], dlq=True
            )
        if sweep:
            self._running.sweeper.start()
        log.info("planner_started", schema=settings.db_schema)

    async def stop(self) -> None:
        await stop_lag_poller(self._lag)
        if self._running is not None:
            await self._running.sweeper.stop()
        await self.broker.stop()  # stops fetching, waits for in-flight handlers (drain)
        for pool in (self.checkpoint_pool, self.lock_pool, self.pool):
            await pool.close()
        log.info("planner_stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # before the broker and pools exist: they pick up the middleware and instrumentation
    configure_tracing(
        settings.trace_service_name, settings.otel_exporter_otlp_endpoint, distribution="planner"
    )
    service = PlannerService(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="tripmesh planner", lifespan=lifespan)
    app.state.service = service
    app.include_router(
        ops_router(
            {
                "nats": nats_check(lambda: service.broker._connection),
                "postgres": lambda: pg_check(service.pool),
            }
        )
    )
    return app
