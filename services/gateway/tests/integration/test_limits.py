"""Limits across replicas: two gateway apps in-process on the same Postgres (and signing key)
share one rate-limit count per user, per API key and per anonymous address; the active-plan
cap, the body size (413) and field limits (422) hold before anything is published."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.js import JetStreamContext
from tripmesh_contracts import subjects
from tripmesh_contracts.rpc import PlanListReply
from tripmesh_gateway.app import create_app
from tripmesh_gateway.settings import Settings

from .conftest import PASSWORD, Responders, RunningGateway, Users, commands_of
from .test_plans_create import plan_body
from .test_plans_read import planner_view

pytestmark = pytest.mark.integration

USER_LIMIT = 5
KEY_LIMIT = 4
ANONYMOUS_LIMIT = 3
ACTIVE_PLANS = 2
BODY_LIMIT = 4096


@dataclass
class Replicas:
    apps: list[FastAPI]
    ip: str

    def client(self, index: int) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.apps[index], client=(self.ip, 40000 + index))
        return httpx.AsyncClient(transport=transport, base_url="http://gw/api/v1", timeout=15)


@pytest.fixture
async def replicas(gateway: RunningGateway) -> AsyncIterator[Replicas]:
    """Two more gateway instances on the session gateway's database and data dir (so the
    same JWT key), with small limits; each test gets a random client address of its own."""
    settings = gateway.settings.model_copy(
        update={
            "rate_limit_per_hour": USER_LIMIT,
            "api_key_rate_limit_per_hour": KEY_LIMIT,
            "anonymous_rate_limit_per_hour": ANONYMOUS_LIMIT,
            "max_active_plans": ACTIVE_PLANS,
            "max_body_bytes": BODY_LIMIT,
            "budget_check_enabled": False,
        }
    )
    assert isinstance(settings, Settings)
    apps = [create_app(settings), create_app(settings)]
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        octets = [random.randint(1, 254) for _ in range(3)]
        yield Replicas(apps, ip="10.{}.{}.{}".format(*octets))


def assert_rate_limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["limit"] == limit


async def test_user_limit_is_shared_by_replicas(replicas: Replicas, users: Users) -> None:
    _, auth = await users.new()
    async with replicas.client(0) as first, replicas.client(1) as second:
        for i in range(USER_LIMIT):
            response = await (first if i % 2 else second).get("/auth/me", headers=auth)
            assert response.status_code == 200, (i, response.text)
        assert_rate_limited(await first.get("/auth/me", headers=auth), USER_LIMIT)
        assert_rate_limited(await second.get("/plans", headers=auth), USER_LIMIT)
        # another user is not affected
        _, other = await users.new()
        assert (await first.get("/auth/me", headers=other)).status_code == 200


async def test_api_key_has_its_own_limit(replicas: Replicas, users: Users, client: httpx.AsyncClient) -> None:
    _, auth = await users.new()
    created = await client.post("/auth/api-keys", json={"name": "ci"}, headers=auth)
    assert created.status_code == 201, created.text
    key_auth = {"Authorization": f"Bearer {created.json()['key']}"}
    async with replicas.client(0) as first, replicas.client(1) as second:
        for i in range(KEY_LIMIT):
            assert (await (first if i % 2 else second).get("/auth/me", headers=key_auth)).status_code == 200
        assert_rate_limited(await second.get("/auth/me", headers=key_auth), KEY_LIMIT)
        assert (await first.get("/auth/me", headers=auth)).status_code == 200  # the user's own count


async def test_anonymous_auth_calls_are_limited_per_address(replicas: Replicas, users: Users) -> None:
    user = await users.signup()
    login = {"email": user["email"], "password": PASSWORD}
    async with replicas.client(0) as first, replicas.client(1) as second:
        for i in range(ANONYMOUS_LIMIT):
            assert (await (first if i % 2 else second).post("/auth/login", json=login)).status_code == 200
        assert_rate_limited(await first.post("/auth/login", json=login), ANONYMOUS_LIMIT)
        assert_rate_limited(await second.post("/auth/refresh", json={"refresh_token": "x"}), ANONYMOUS_LIMIT)


async def test_active_plan_cap(
    replicas: Replicas, users: Users, responders: Responders, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    finished: set[str] = set()

    def planner_list(request: dict[str, Any]) -> PlanListReply:
        # The planner knows only the finished plans; the others are accepted, not yet seen.
        items = [planner_view(plan_id, request["user_id"]) for plan_id in sorted(finished)]
        return PlanListReply(items=items, total=len(items))

    await responders.answer(subjects.SVC_PLANNER_LIST, planner_list)
    async with replicas.client(0) as first, replicas.client(1) as second:
        ids = []
        for i in range(ACTIVE_PLANS):
            response = await (first if i % 2 else second).post(
                "/plans", json=plan_body(), headers={**auth, "Idempotency-Key": f"k{i}"}
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        refused = await first.post("/plans", json=plan_body(), headers=auth)
        assert refused.status_code == 429, refused.text
        assert refused.json()["active_plans"] == ACTIVE_PLANS
        assert refused.headers["content-type"] == "application/problem+json"
        assert len(await commands_of(js, user["id"])) == ACTIVE_PLANS  # nothing published
        # a retried create is never refused: it creates nothing new
        retry = await second.post("/plans", json=plan_body(), headers={**auth, "Idempotency-Key": "k0"})
        assert retry.status_code == 202 and retry.json()["id"] == ids[0]
        finished.add(ids[0])
        assert (await second.post("/plans", json=plan_body(), headers=auth)).status_code == 202


async def test_body_too_large_is_413_and_field_limits_422(
    replicas: Replicas, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    async with replicas.client(0) as first:
        big = plan_body(description="x" * 4900, preferences={"notes": "y" * BODY_LIMIT})
        response = await first.post("/plans", json=big, headers=auth)
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["max_bytes"] == BODY_LIMIT

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(BODY_LIMIT // 1000 + 2):
                yield b" " * 1000

        chunked = await first.post(
            "/plans", content=chunks(), headers={**auth, "Content-Type": "application/json"}
        )
        assert chunked.status_code == 413

        too_long = await first.post("/plans", json=plan_body(title="t" * 201), headers=auth)
        assert too_long.status_code == 422
        assert [e["field"] for e in too_long.json()["errors"]] == ["title"]
        many = await first.post("/plans", json=plan_body(destinations=["Lisbon"] * 11), headers=auth)
        assert many.status_code == 422
    assert await commands_of(js, user["id"]) == []
