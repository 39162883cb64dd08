"""The gateway in-process on a real uvicorn socket, against real NATS and Postgres, plus
helpers that play the planner, ledger and vectors.

NATS is a private embedded server for this session, even when NATS_URL is set: these tests
assert that *nothing else* answers svc.* (their tiny responders play the services) and that
commands stay on PLAN_COMMANDS, which a real planner or ledger on a shared bus (`make up`)
would consume or answer. Postgres is the devstack plugin's session server, with a database
of our own. Users are unique per test; each test deletes the commands and events its users
left on the streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from tripmesh_contracts import streams, subjects
from tripmesh_contracts.rpc import RpcModel
from tripmesh_devstack.nats import NatsServer
from tripmesh_devstack.postgres import run_psql
from tripmesh_devstack.testing import database_url_for
from tripmesh_gateway.app import create_app
from tripmesh_gateway.events import user_events_filter
from tripmesh_gateway.settings import Settings

PASSWORD = "a-long-enough-passphrase"


@pytest.fixture(scope="session")
def gateway_database_url(database_url: str) -> Iterator[str]:
    """A database of the gateway tests' own on the session's Postgres server."""
    name = f"gateway_test_{uuid.uuid4().hex[:12]}"
    admin = database_url_for(database_url, "postgres")
    run_psql(admin, f'CREATE DATABASE "{name}"')
    yield database_url_for(database_url, name)
    run_psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RunningGateway:
    app: FastAPI
    base_url: str
    settings: Settings


async def start_uvicorn(app: FastAPI) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # surfaces the start-up error
            raise RuntimeError("uvicorn exited before starting")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def gateway_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = NatsServer(tmp_path_factory.mktemp("gateway-nats"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
async def gateway(
    gateway_nats_url: str, gateway_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    settings = Settings(
        nats_url=gateway_nats_url,
        database_url=gateway_database_url,
        data_dir=tmp_path_factory.mktemp("gateway-data"),
        http_port=0,
        rpc_timeout_seconds=2.0,
        cost_timeout_seconds=0.5,
        sse_keepalive_seconds=0.5,
        # Every test signs up and logs in from 127.0.0.1 as one anonymous caller; the limits
        # have tests of their own (test_limits.py).
        anonymous_rate_limit_per_hour=0,
        max_active_plans=0,
    )
    app = create_app(settings)
    server, task, base_url = await start_uvicorn(app)
    yield RunningGateway(app=app, base_url=base_url, settings=settings)
    server.should_exit = True
    await task


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url + "/api/v1", timeout=15) as http:
        yield http


@pytest.fixture(scope="session")
async def nc(gateway_nats_url: str) -> AsyncIterator[Client]:
    conn = await nats.connect(gateway_nats_url)
    yield conn
    await conn.drain()


@pytest.fixture(scope="session")
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


@dataclass
class Users:
    """Users created by one test; their stream leftovers are deleted at teardown."""

    client: httpx.AsyncClient
    ids: list[str] = field(default_factory=list)

    async def signup(self, **overrides: Any) -> dict[str, Any]:
        tag = uuid.uuid4().hex[:10]
        body = {
            "email": f"u{tag}@example.com",
            "username": f"user_{tag}",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            **overrides,
        }
        response = await self.client.post("/auth/signup", json=body)
        assert response.status_code == 201, response.text
        user: dict[str, Any] = response.json()
        self.ids.append(user["id"])
        return {**user, "password": body["password"]}

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post("/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    async def new(self) -> tuple[dict[str, Any], dict[str, str]]:
        """A fresh user and the Authorization header of its access token."""
        user = await self.signup()
        tokens = await self.login(user["email"])
        return user, {"Authorization": f"Bearer {tokens['access_token']}"}


async def messages(js: JetStreamContext, stream: str, subject: str) -> list[api.RawStreamMsg]:
    """Every message currently stored on `subject` in `stream`, read by sequence (works on
    work-queue streams, which refuse the no-ack consumers a replay would use)."""
    found: list[api.RawStreamMsg] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(msg)
        assert msg.seq is not None
        seq = msg.seq + 1


async def commands_of(js: JetStreamContext, user_id: str) -> list[api.RawStreamMsg]:
    """The plan commands in PLAN_COMMANDS sent on behalf of `user_id`."""
    out = []
    for msg in await messages(js, streams.PLAN_COMMANDS.name, subjects.PLAN_CMD_ALL):
        if json.loads(msg.data or b"{}").get("user_id") == user_id:
            out.append(msg)
    return out


@pytest.fixture
async def users(client: httpx.AsyncClient, js: JetStreamContext) -> AsyncIterator[Users]:
    created = Users(client)
    yield created
    for user_id in created.ids:
        for msg in await commands_of(js, user_id):
            with contextlib.suppress(NotFoundError):
                await js.delete_msg(streams.PLAN_COMMANDS.name, msg.seq)
        await js.purge_stream(streams.PLAN_EVENTS.name, subject=subjects.plan_events_filter(user_id))
        await js.purge_stream(streams.PLAN_EVENTS.name, subject=user_events_filter(user_id))


Handler = Callable[[dict[str, Any]], Awaitable[RpcModel] | RpcModel]


@dataclass
class Responders:
    """Tiny svc.* responders playing the planner, ledger or vectors; requests are recorded."""

    nc: Client
    requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    subs: list[Any] = field(default_factory=list)

    async def answer(self, subject: str, handler: Handler) -> None:
        async def respond(msg: Msg) -> None:
            request = json.loads(msg.data)
            self.requests.setdefault(subject, []).append(request)
            reply = handler(request)
            if asyncio.iscoroutine(reply):
                reply = await reply
            assert isinstance(reply, RpcModel)
            await msg.respond(reply.to_bytes())

        self.subs.append(await self.nc.subscribe(subject, cb=respond))
        await self.nc.flush()


@pytest.fixture
async def responders(nc: Client) -> AsyncIterator[Responders]:
    created = Responders(nc)
    yield created
    for sub in created.subs:
        await sub.unsubscribe()


@pytest.fixture
def data_dir(gateway: RunningGateway) -> Path:
    return gateway.settings.data_dir
