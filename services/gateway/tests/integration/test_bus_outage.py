"""A create whose publish fails is a 503, is not shown as accepted, and a retry with the same
Idempotency-Key after the bus is back publishes the same message id exactly once.

Stops a NATS server, so it runs its own (ARCHITECTURE.md §9), with a second gateway on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from tripmesh_contracts.rpc import PlanGetReply, PlanListReply, RpcError
from tripmesh_gateway.app import create_app
from tripmesh_gateway.domain import create_message_id
from tripmesh_gateway.settings import Settings

from .conftest import Users, commands_of, start_uvicorn
from .test_plans_create import plan_body

pytestmark = pytest.mark.integration


async def wait_ready(http: httpx.AsyncClient, status: int) -> None:
    while True:
        if (await http.get("/readyz")).status_code == status:
            return
        await asyncio.sleep(0.2)


async def test_failed_publish_is_503_and_the_same_key_republishes_once(
    own_nats_server: Callable[..., Any], gateway_database_url: str, tmp_path: Path
) -> None:
    server = own_nats_server()
    settings = Settings(
        nats_url=server.url,
        database_url=gateway_database_url,
        data_dir=tmp_path,
        http_port=0,
        publish_timeout_seconds=0.5,
        publish_attempts=2,
        budget_check_enabled=False,
    )
    uvicorn_server, task, base_url = await start_uvicorn(create_app(settings))
    try:
        async with (
            httpx.AsyncClient(base_url=base_url + "/api/v1", timeout=30) as client,
            httpx.AsyncClient(base_url=base_url, timeout=30) as ops,
        ):
            user, auth = await Users(client).new()
            headers = {**auth, "Idempotency-Key": "retry-me"}

            server.stop()
            await asyncio.wait_for(wait_ready(ops, 503), timeout=30)
            failed = await client.post("/plans", json=plan_body(), headers=headers)
            assert failed.status_code == 503, failed.text
            assert failed.headers["content-type"] == "application/problem+json"
            plan_id = failed.json()["plan_id"]
            # not listed as accepted: the list pages over published rows only
            assert (await client.get("/plans", headers=auth)).json()["total"] == 0

            server.start()
            await asyncio.wait_for(wait_ready(ops, 200), timeout=60)  # liveness bound
            nc = await nats.connect(server.url)

            async def planner_list(msg: Msg) -> None:
                await msg.respond(PlanListReply().to_bytes())

            async def planner_get(msg: Msg) -> None:
                await msg.respond(PlanGetReply(error=RpcError(status=404, title="Not Found")).to_bytes())

            await nc.subscribe("svc.planner.list", cb=planner_list)
            await nc.subscribe("svc.planner.get", cb=planner_get)
            await nc.flush()
            retried = await client.post("/plans", json=plan_body(), headers=headers)
            again = await client.post("/plans", json=plan_body(), headers=headers)

            assert retried.status_code == again.status_code == 202, retried.text
            assert retried.json()["id"] == again.json()["id"] == plan_id
            assert (await client.get("/plans", headers=auth)).json()["total"] == 1
            try:
                published = await commands_of(nc.jetstream(), user["id"])
            finally:
                await nc.close()
            assert len(published) == 1
            assert published[0].headers is not None
            assert published[0].headers["Nats-Msg-Id"] == create_message_id(plan_id)
    finally:
        uvicorn_server.should_exit = True
        await task
