"""PUT / cancel / decision / DELETE publish the planner's commands on PLAN_COMMANDS."""

from __future__ import annotations

import httpx
import pytest
from nats.js import JetStreamContext
from tripmesh_contracts import PlanCancel, PlanDecide, PlanDelete, PlanRevise

from .conftest import Users, commands_of
from .test_plans_read import create

pytestmark = pytest.mark.integration


async def test_revise_merges_changes_resolves_places_and_publishes(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    response = await client.put(
        f"/plans/{plan_id}",
        json={
            "destinations": ["Madrid"],
            "budget_total": 3000,
            "feedback": "less walking",
            "multitask_strategy": "interrupt",
        },
        headers=auth,
    )

    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/v1/plans/{plan_id}"
    revise = [m for m in await commands_of(js, user["id"]) if m.subject == "plans.cmd.revise"]
    assert len(revise) == 1
    assert revise[0].data is not None
    command = PlanRevise.from_bytes(revise[0].data)
    assert command.id == response.json()["message_id"]
    assert [p.name for p in command.request.destinations] == ["Madrid"]
    assert command.request.budget_total == 3000
    assert command.request.title == "Food in Portugal"  # unchanged fields are kept
    assert command.feedback == "less walking"
    assert command.multitask_strategy == "interrupt"


async def test_revise_with_bad_fields_names_them_and_publishes_nothing(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)  # 2027-05-01 .. 2027-05-06
    cases = [
        ({"start_date": "2027-06-01"}, "start_date"),
        ({"destinations": ["Lisbn"]}, "destinations[0]"),
        ({"budget_total": -5}, "budget_total"),
        ({}, "body"),
    ]
    for body, field in cases:
        response = await client.put(f"/plans/{plan_id}", json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
        assert field in [e["field"] for e in response.json()["errors"]]
    assert [m.subject for m in await commands_of(js, user["id"])] == ["plans.cmd.create"]


async def test_cancel_decide_delete(client: httpx.AsyncClient, users: Users, js: JetStreamContext) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)

    cancel = await client.post(f"/plans/{plan_id}/cancel", json={"reason": "changed my mind"}, headers=auth)
    decide = await client.post(f"/plans/{plan_id}/decision", json={"approve": False}, headers=auth)
    bad_decision = await client.post(f"/plans/{plan_id}/decision", json={"approve": "maybe"}, headers=auth)
    delete = await client.delete(f"/plans/{plan_id}", headers=auth)

    assert (cancel.status_code, decide.status_code, delete.status_code) == (202, 202, 204)
    assert bad_decision.status_code == 422
    assert bad_decision.json()["errors"][0]["field"] == "approve"
    published = {m.subject: m.data for m in await commands_of(js, user["id"])}
    assert PlanCancel.model_validate_json(published["plans.cmd.cancel"] or b"").reason == "changed my mind"
    assert PlanDecide.model_validate_json(published["plans.cmd.decide"] or b"").approve is False
    assert PlanDelete.model_validate_json(published["plans.cmd.delete"] or b"").plan_id == plan_id

    # deleted: gone for its owner too, and out of the list
    assert (await client.get(f"/plans/{plan_id}", headers=auth)).status_code == 404
    assert (await client.delete(f"/plans/{plan_id}", headers=auth)).status_code == 404
    assert (await client.get("/plans", headers=auth)).json()["total"] == 0


async def test_commands_with_the_same_idempotency_key_are_published_once(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    headers = {**auth, "Idempotency-Key": "cancel-1"}
    first = await client.post(f"/plans/{plan_id}/cancel", headers=headers)
    again = await client.post(f"/plans/{plan_id}/cancel", headers=headers)

    assert first.json()["message_id"] == again.json()["message_id"]
    cancels = [m for m in await commands_of(js, user["id"]) if m.subject == "plans.cmd.cancel"]
    assert len(cancels) == 1  # JetStream dropped the duplicate Nats-Msg-Id
