"""Issue #8: each service's NATS user and Postgres role can do its own work and nothing else.

Real servers (own embedded ones: these tests configure users and roles, ARCHITECTURE §9).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest
from nats.aio.client import Client
from tripmesh_contracts import subjects
from tripmesh_contracts.plans import AgentName
from tripmesh_contracts.streams import ALL_CONSUMERS
from tripmesh_devstack.access import StackAccess
from tripmesh_devstack.identities import AGENTS, SERVICE_IDENTITIES
from tripmesh_devstack.nats import NatsServer
from tripmesh_devstack.pgroles import ensure_service_role
from tripmesh_devstack.postgres import PostgresServer
from tripmesh_kit.bus import provision
from tripmesh_kit.pg import Migration, apply_migrations
from tripmesh_kit.settings import ServiceSettings

pytestmark = pytest.mark.integration


def test_identities_cover_the_contracts() -> None:
    assert set(AGENTS) == {a.value for a in AgentName}
    owners = {"planner": "planner", "runner": "agent-runner", "cost": "cost-ledger", "vector": "vector-sync"}
    for spec in ALL_CONSUMERS:
        owner = next(v for k, v in owners.items() if spec.durable.startswith(k))
        fetch = f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}"
        assert fetch in SERVICE_IDENTITIES[owner].nats.publish, spec.durable


def test_settings_fold_nats_credentials_into_the_url() -> None:
    s = ServiceSettings.model_validate(
        {"NATS_URL": "nats://h:4222", "NATS_USER": "planner", "NATS_PASSWORD": "p/w"}
    )
    assert s.nats_url == "nats://planner:p%2Fw@h:4222"
    assert ServiceSettings.model_validate({"NATS_URL": "nats://h:4222"}).nats_url == "nats://h:4222"
    kept = ServiceSettings.model_validate({"NATS_URL": "nats://a:b@h:1", "NATS_USER": "x"})
    assert kept.nats_url == "nats://a:b@h:1"


# -- NATS -----------------------------------------------------------------------------------


class Errors:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def callback(self) -> Callable[[Exception], Any]:
        async def on_error(exc: Exception) -> None:  # nats-py wants a coroutine function
            self.seen.append(str(exc))

        return on_error

    async def wait_for(self, text: str, timeout: float = 10.0) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if any(text.lower() in e.lower() for e in self.seen):
                return True
            await asyncio.sleep(0.05)
        return False


@pytest.fixture
def secured_nats(own_nats_server: Callable[..., NatsServer], tmp_path: Path) -> NatsServer:
    access = StackAccess(tmp_path, nats=True, postgres=False)
    return own_nats_server(tmp_path / "nats", users=access.nats_users())


async def connect_as(server: NatsServer, user: str, errors: Errors | None = None) -> Client:
    return await nats.connect(
        server.url_for(user), error_cb=(errors or Errors()).callback(), allow_reconnect=False
    )


async def test_anonymous_and_wrong_passwords_are_refused(secured_nats: NatsServer) -> None:
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(secured_nats.url, allow_reconnect=False, max_reconnect_attempts=0)
    bad = secured_nats.url_for("planner").replace(":", "x", 2).replace("natsx//", "nats://", 1)
    with pytest.raises(Exception):  # noqa: B017 - the client reports it in several ways
        await nats.connect(bad, allow_reconnect=False, max_reconnect_attempts=0)


async def test_each_service_may_do_only_its_own_work(secured_nats: NatsServer) -> None:
    admin = await connect_as(secured_nats, "admin")
    await provision(admin.jetstream())

    # the gateway sends commands; the runner may not
    gateway = await connect_as(secured_nats, "gateway")
    ack = await gateway.jetstream().publish(subjects.PLAN_CMD_CREATE, b"{}", timeout=5)
    assert ack.stream == "PLAN_COMMANDS"
    errors = Errors()
    runner = await connect_as(secured_nats, "agent-runner", errors)
    await runner.publish(subjects.PLAN_CMD_CREATE, b"{}")
    assert await errors.wait_for(f'Permissions Violation for Publish to "{subjects.PLAN_CMD_CREATE}"'), (
        errors.seen
    )
    # ... nor read usage, nor answer the ledger's requests, nor change a stream
    await runner.subscribe("usage.llm.>")
    assert await errors.wait_for('Permissions Violation for Subscription to "usage.llm.>"')
    await runner.subscribe(subjects.SVC_LEDGER_RESERVE)
    assert await errors.wait_for(f'Subscription to "{subjects.SVC_LEDGER_RESERVE}"')
    await runner.publish("$JS.API.STREAM.DELETE.PLAN_COMMANDS", b"")
    assert await errors.wait_for('Publish to "$JS.API.STREAM.DELETE.PLAN_COMMANDS"')
    # but it fetches its own jobs and asks the ledger
    sub = await runner.jetstream().pull_subscribe_bind("runner-weather", stream="AGENT_JOBS")
    with pytest.raises(nats.errors.TimeoutError):
        await sub.fetch(1, timeout=0.5)

    # the gateway may not take the planner's commands off the queue
    gw_errors = Errors()
    gateway2 = await connect_as(secured_nats, "gateway", gw_errors)
    await gateway2.publish("$JS.API.CONSUMER.MSG.NEXT.PLAN_COMMANDS.planner-commands", b"1")
    assert await gw_errors.wait_for("Permissions Violation for Publish")
    # the planner does, and acks
    planner = await connect_as(secured_nats, "planner")
    psub = await planner.jetstream().pull_subscribe_bind("planner-commands", stream="PLAN_COMMANDS")
    [msg] = await psub.fetch(1, timeout=5)
    await msg.ack_sync(timeout=5)
    for client in (admin, gateway, gateway2, runner, planner):
        await client.close()


async def test_request_reply_between_services(secured_nats: NatsServer) -> None:
    ledger = await connect_as(secured_nats, "cost-ledger")

    async def answer(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(b"granted")

    await ledger.subscribe(subjects.SVC_LEDGER_RESERVE, queue="cost-ledger", cb=answer)
    runner = await connect_as(secured_nats, "agent-runner")
    reply = await runner.request(subjects.SVC_LEDGER_RESERVE, b"{}", timeout=5)
    assert reply.data == b"granted"
    await runner.close()
    await ledger.close()


# -- Postgres -------------------------------------------------------------------------------


def test_service_roles_own_their_schema_and_cannot_read_others(
    own_postgres_server: Callable[..., PostgresServer], tmp_path: Path
) -> None:
    pg = own_postgres_server(tmp_path / "pg")
    access = StackAccess(tmp_path, nats=False, postgres=True)
    access.ensure_roles(pg)
    access.ensure_roles(pg)  # idempotent
    urls = {
        name: access.service_env(name, None, pg)[f"{i.env_prefix}DATABASE_URL"]
        for name, i in SERVICE_IDENTITIES.items()
        if i.schemas
    }
    migration = [
        Migration(1, "t", "CREATE TABLE {schema}.secrets (v text); INSERT INTO {schema}.secrets VALUES ('x')")
    ]
    for name, url in urls.items():
        for schema in SERVICE_IDENTITIES[name].schemas:
            assert asyncio.run(apply_migrations(url, schema, migration)) == 1  # migrations run as the role
    with psycopg.connect(urls["gateway"], autocommit=True) as conn:
        assert conn.execute(
            "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user"
        ).fetchone() == (
            "tripmesh_gateway",
            False,
        )
        assert conn.execute("SELECT v FROM accounts.secrets").fetchone() == ("x",)
        for other in ("ledger", "planner", "planner_checkpoints"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {other}.secrets")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE SCHEMA elsewhere")
    with (
        psycopg.connect(urls["cost-ledger"], autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT * FROM accounts.secrets")


def test_password_auth_and_schemas_made_by_the_superuser_are_handed_over(
    own_postgres_server: Callable[..., PostgresServer], tmp_path: Path
) -> None:
    pg = own_postgres_server(tmp_path / "pg")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/tripmesh").close()
    # a data directory from before roles: the superuser made the schema and its tables
    pg.psql("CREATE SCHEMA ledger; CREATE TABLE ledger.usage_events (id text PRIMARY KEY)", "tripmesh")
    ensure_service_role(pg.admin_url, pg.url, "tripmesh_cost_ledger", "pw", ["ledger"])
    url = pg.url_for("tripmesh", "tripmesh_cost_ledger", "pw")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO ledger.usage_events VALUES ('e1')")
        conn.execute("ALTER TABLE ledger.usage_events ADD COLUMN extra int")  # it owns it
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(pg.url_for("tripmesh", "tripmesh_cost_ledger", "wrong")).close()
