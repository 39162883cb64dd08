"""PUT /plans/{id} while a run is active: `multitask_strategy` reject (the default) is a 409
from the gateway, which asks the planner (svc.planner.get) whether a run is active; enqueue
and interrupt are published for the planner to apply. Found by the planner e2e tests: the
gateway used to publish a `reject` revision with 202, and the planner then dropped it."""

from __future__ import annotations

import httpx
import pytest
from nats.js import JetStreamContext
from tripmesh_contracts import PlanRevise
from tripmesh_contracts.rpc import PlanGetReply

from .conftest import Responders, Users, commands_of
from .test_plans_read import NOT_FOUND, create, planner_view

pytestmark = pytest.mark.integration


async def revisions(js: JetStreamContext, user_id: str) -> list[PlanRevise]:
    return [
        PlanRevise.from_bytes(m.data or b"")
        for m in await commands_of(js, user_id)
        if m.subject == "plans.cmd.revise"
    ]


@pytest.mark.parametrize("status", ["processing", "awaiting_approval"])
async def test_reject_while_a_run_is_active_is_409_and_publishes_nothing(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext, responders: Responders, status: str
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    await responders.answer(
        "svc.planner.get", lambda req: PlanGetReply(plan=planner_view(plan_id, user["id"], status=status))
    )

    implicit = await client.put(f"/plans/{plan_id}", json={"feedback": "cheaper"}, headers=auth)
    explicit = await client.put(
        f"/plans/{plan_id}", json={"feedback": "cheaper", "multitask_strategy": "reject"}, headers=auth
    )

    for response in (implicit, explicit):
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["plan_status"] == status
    assert await revisions(js, user["id"]) == []
    assert responders.requests["svc.planner.get"][0] == {"user_id": user["id"], "plan_id": plan_id}


async def test_reject_before_the_planner_stored_the_plan_is_409(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext, responders: Responders
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)  # published, the planner has not stored it yet
    await responders.answer("svc.planner.get", lambda req: PlanGetReply(error=NOT_FOUND))

    response = await client.put(f"/plans/{plan_id}", json={"feedback": "cheaper"}, headers=auth)

    assert response.status_code == 409, response.text
    assert await revisions(js, user["id"]) == []


@pytest.mark.parametrize("status", ["completed", "partial", "failed", "cancelled"])
async def test_reject_after_the_run_finished_is_published(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext, responders: Responders, status: str
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    await responders.answer(
        "svc.planner.get", lambda req: PlanGetReply(plan=planner_view(plan_id, user["id"], status=status))
    )

    response = await client.put(f"/plans/{plan_id}", json={"feedback": "cheaper"}, headers=auth)

    assert response.status_code == 202, response.text
    assert [r.multitask_strategy for r in await revisions(js, user["id"])] == ["reject"]


@pytest.mark.parametrize("strategy", ["enqueue", "interrupt"])
async def test_enqueue_and_interrupt_are_published_without_asking_the_planner(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext, responders: Responders, strategy: str
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    await responders.answer(
        "svc.planner.get",
        lambda req: PlanGetReply(plan=planner_view(plan_id, user["id"], status="processing")),
    )

    response = await client.put(
        f"/plans/{plan_id}", json={"feedback": "cheaper", "multitask_strategy": strategy}, headers=auth
    )

    assert response.status_code == 202, response.text
    assert [r.multitask_strategy for r in await revisions(js, user["id"])] == [strategy]
    assert "svc.planner.get" not in responders.requests
