"""The agent-runner process: subscribers for the agent types it serves, plus ops endpoints.

Stateless: no database. Scaling is per agent pool - every replica serving `transport` shares
the durable `runner-transport`, so JetStream spreads transport jobs across them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from tripmesh_contracts.streams import runner_consumer
from tripmesh_kit import telemetry
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.lag import start_lag_poller, stop_lag_poller
from tripmesh_kit.logging import get_logger
from tripmesh_kit.ops import nats_check, ops_router
from tripmesh_kit.telemetry import configure_tracing

from tripmesh_agent_runner.budget import PriceBook
from tripmesh_agent_runner.cache import KvCache
from tripmesh_agent_runner.handlers import JobRunner, register_handlers
from tripmesh_agent_runner.ledger_client import LedgerClient
from tripmesh_agent_runner.llm.base import LlmClient
from tripmesh_agent_runner.llm.caching import CachingLlmClient
from tripmesh_agent_runner.llm.litellm_client import LitellmClient  # lazy: no litellm import yet
from tripmesh_agent_runner.llm.traced import TracedLlmClient
from tripmesh_agent_runner.plan_status import PlanStatusBoard
from tripmesh_agent_runner.settings import Settings
from tripmesh_agent_runner.tools import build_tool_registry
from tripmesh_agent_runner.tools.climate import OPEN_METEO_URL

log = get_logger(__name__)


def create_app(settings: Settings | None = None, llm: LlmClient | None = None) -> FastAPI:
    """`llm` replaces the litellm client (tests of the wiring); None = litellm."""
    settings = settings or Settings()
    # before the broker and pools exist: they pick up the middleware and instrumentation
    configure_tracing(
        settings.trace_service_name, settings.otel_exporter_otlp_endpoint, distribution="agent-runner"
    )
    # graceful_timeout: on shutdown the broker stops fetching and waits this long for the jobs
    # in hand to finish and publish their results (SIGTERM drain)
    # FastStream's own access lines ("Received", "Processed") are INFO on a plain-text
    # logger: route them to a stdlib logger that follows the process level (WARNING unless
    # configured), so the JSON log stays ours; its errors still come through.
    broker = make_broker(
        settings.nats_url,
        settings.service_name,
        graceful_timeout=settings.drain_timeout_seconds,
        logger=logging.getLogger("tripmesh_agent_runner.broker"),
    )
    bus = Bus(broker)
    base_client = llm or LitellmClient(
        local_price=settings.local_price(),
        local_latency_seconds=settings.local_model_latency_ms / 1000,
        call_ref_header=settings.call_ref_header or None,
    )
    tools = build_tool_registry(settings.weather_provider, settings.open_meteo_url or OPEN_METEO_URL)
    cache = (
        KvCache(settings.cache_bucket, settings.cache_ttl_seconds, settings.cache_max_bytes)
        if settings.cache_enabled
        else None
    )
    client: LlmClient = base_client if cache is None else CachingLlmClient(base_client, cache)
    if telemetry.enabled():
        client = TracedLlmClient(client)
    tools.cache = cache
    plan_status = PlanStatusBoard(settings.plan_status_bucket)
    ledger = (
        LedgerClient(broker, timeout=settings.ledger_timeout_seconds, attempts=settings.ledger_attempts)
        if settings.budget_enforced
        else None
    )
    runner = JobRunner(
        bus=bus, llm=client, tools=tools, settings=settings, plan_status=plan_status, ledger=ledger,
        prices=PriceBook(settings.local_price()),
    )  # fmt: skip
    served = register_handlers(broker, runner)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if isinstance(base_client, LitellmClient):
            # `import litellm` costs ~4 s of CPU: pay it (and register the local model) in a
            # thread before taking jobs, not inside the first job with the loop blocked.
            await asyncio.to_thread(lambda: base_client.litellm)
        await broker.connect()
        if settings.provision_streams:
            await provision(bus.js)
        # KV buckets before the first job: the cache (shared by every replica) and the
        # planner's plan-status board (created here too if the planner has not yet)
        if cache is not None:
            await cache.open(bus.js)
        await plan_status.open(bus.js)
        await broker.start()
        # the lag of each pool this replica serves (tripmesh_consumer_pending_messages)
        lag = start_lag_poller(lambda: bus.js, [runner_consumer(a) for a in served])
        log.info(
            "agent_runner_started",
            agents=[a.value for a in served],
            concurrency=settings.concurrency,
            cache=settings.cache_enabled,
            budget_enforced=settings.budget_enforced,
            models={a.value: settings.agent_config(a).model for a in served},
        )
        try:
            yield
        finally:
            await stop_lag_poller(lag)
            # stop fetching, wait for the jobs in hand (graceful_timeout), then disconnect
            await broker.stop()
            log.info("agent_runner_stopped")

    app = FastAPI(title="tripmesh agent-runner", lifespan=lifespan)
    app.include_router(ops_router({"nats": nats_check(lambda: broker._connection)}))
    app.state.settings = settings
    app.state.broker = broker
    app.state.bus = bus
    app.state.runner = runner
    app.state.cache = cache
    app.state.agents = served
    return app
