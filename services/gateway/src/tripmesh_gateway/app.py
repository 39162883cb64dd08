"""create_app(): the only place that reads the environment (through Settings())."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.logging import get_logger
from tripmesh_kit.ops import nats_check, ops_router
from tripmesh_kit.pg import make_pool, pg_check
from tripmesh_kit.telemetry import configure_tracing, instrument_app
from tripmesh_places import warm_up

from tripmesh_gateway import asyncapi
from tripmesh_gateway.admin import grant_admins
from tripmesh_gateway.api.errors import install_error_handlers
from tripmesh_gateway.api.routes import auth, budgets, costs, events, plans, search
from tripmesh_gateway.api.routes import nats_credentials as nats_credentials_route
from tripmesh_gateway.api.routes import sharing as plan_sharing
from tripmesh_gateway.auth_store import AuthStore
from tripmesh_gateway.http_metrics import HttpMetricsMiddleware
from tripmesh_gateway.limits import BodySizeLimitMiddleware, RateLimiter
from tripmesh_gateway.nats_credentials import CalloutResponder, NatsCredentialIssuer
from tripmesh_gateway.nats_jwt import Issuer
from tripmesh_gateway.rpc import RpcClient
from tripmesh_gateway.runtime import Runtime
from tripmesh_gateway.security import TokenSigner
from tripmesh_gateway.settings import Environment, Settings
from tripmesh_gateway.signing_key import load_signing_key
from tripmesh_gateway.store import AccountStore, migrate

log = get_logger(__name__)

API_PREFIX = "/api/v1"


def nats_credential_issuer(settings: Settings, key: bytes) -> NatsCredentialIssuer | None:
    """Direct NATS access for clients (issue #8), when the server's auth callout is ours."""
    seed = settings.nats_callout_issuer_seed
    if seed is None or not settings.nats_client_url:
        return None
    return NatsCredentialIssuer(
        key=key,
        issuer=Issuer(seed.get_secret_value()),
        client_url=settings.nats_client_url,
        ttl=timedelta(seconds=settings.nats_credentials_ttl_seconds),
    )


def build_runtime(settings: Settings) -> Runtime:
    broker = make_broker(settings.nats_url, "gateway")
    # autocommit: a lone statement (the session lookup, the rate counter, the plan's index
    # row and its publish mark on every POST) costs one round trip, not three; what must be
    # atomic (refresh-token rotation, session revocation) opens its own `conn.transaction()` (#13)
    pool = make_pool(
        settings.database_url, name="gateway", max_size=settings.db_pool_max_size, autocommit=True
    )
    signer = TokenSigner(
        key=load_signing_key(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
    )
    return Runtime(
        settings=settings,
        broker=broker,
        bus=Bus(broker, publish_timeout=settings.publish_timeout_seconds, attempts=settings.publish_attempts),
        rpc=RpcClient(broker, settings.rpc_timeout_seconds),
        store=AccountStore(pool),
        signer=signer,
        auth=AuthStore(pool),
        limiter=RateLimiter(pool, settings.rate_limit_window_seconds),
        nats_credentials=nats_credential_issuer(settings, signer.key),
    )


async def start_nats_callout(runtime: Runtime) -> CalloutResponder | None:
    if runtime.nats_credentials is None:
        return None

    async def user_is_active(user_id: str) -> bool:
        user = await runtime.store.user_by_id(user_id)
        return user is not None and user.is_active

    connection = runtime.broker._connection
    if connection is None:  # the broker has started: cannot happen, but say so if it does
        raise RuntimeError("NATS is not connected: cannot answer auth callout requests")
    responder = CalloutResponder(runtime.nats_credentials, user_is_active)
    await responder.start(connection)
    return responder


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # before the broker and pools exist: they pick up the middleware and instrumentation
    configure_tracing(
        settings.trace_service_name, settings.otel_exporter_otlp_endpoint, distribution="gateway"
    )
    runtime = build_runtime(settings)
    pool = runtime.store.pool

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        applied = await migrate(settings.database_url)
        await pool.open()
        if settings.admin_emails:
            await grant_admins(runtime.store, settings.admin_emails)
        await runtime.broker.start()
        if settings.provision_streams:
            await provision(runtime.bus.js)
        callout = await start_nats_callout(runtime)
        # The place indexes take a moment to build: pay it before the first request does.
        await asyncio.to_thread(warm_up)
        log.info("gateway_started", host=settings.http_host, port=settings.http_port, migrations=applied)
        try:
            yield
        finally:
            if callout is not None:
                await callout.stop()
            try:
                await runtime.broker.stop()
            except Exception as exc:  # e.g. still reconnecting: nothing left to drain anyway
                log.warning("broker_stop_failed", error=repr(exc))
            await pool.close()
            log.info("gateway_stopped")

    production = settings.environment is Environment.PRODUCTION
    app = FastAPI(
        title="tripmesh gateway",
        version="1.0.0",
        description="HTTP/SSE edge of tripmesh. Errors are RFC 9457 problem+json. "
        "Bus contracts: [/asyncapi](/asyncapi).",
        lifespan=lifespan,
        debug=False,
        swagger_ui_parameters={"persistAuthorization": not production},
    )
    app.state.runtime = runtime
    instrument_app(app)  # the HTTP request is the root span of a plan's trace
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HttpMetricsMiddleware)

    api = APIRouter(prefix=API_PREFIX)
    for module in (auth, plans, events, costs, budgets, search):
        api.include_router(module.router)
    api.include_router(plan_sharing.router)
    api.include_router(nats_credentials_route.router)
    app.include_router(api)
    app.include_router(
        ops_router(
            {
                "nats": nats_check(lambda: runtime.broker._connection),
                "postgres": lambda: pg_check(pool),
            }
        )
    )

    document = asyncapi.document(settings.nats_url)

    @app.get("/asyncapi", include_in_schema=False)
    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_document() -> dict[str, Any]:
        """AsyncAPI 3.0 for the bus, generated from libs/contracts."""
        return document

    return app
