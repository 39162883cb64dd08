"""Reading plans: planner view or accepted view, costs from the ledger (or not), list paging,
and another user's plan being 404 on every per-plan route."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from tripmesh_contracts.rpc import (
    PlanCostsReply,
    PlanGetReply,
    PlanListReply,
    PlanVersionReply,
    PlanVersionsReply,
    PlanVersionView,
    PlanView,
    RpcError,
    SearchHit,
    SearchReply,
)

from .conftest import Responders, Users
from .test_plans_create import plan_body

pytestmark = pytest.mark.integration

NOT_FOUND = RpcError(status=404, title="Not Found", detail="no such plan")


def planner_view(plan_id: str, user_id: str, **overrides: Any) -> PlanView:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": plan_id,
        "user_id": user_id,
        "title": "Food in Portugal",
        "destinations": ["Lisbon", "Porto"],
        "start_date": "2027-05-01",
        "end_date": "2027-05-06",
        "budget_total": Decimal("2500"),
        "budget_currency": "EUR",
        "traveler_count": 2,
        "status": "completed",
        "version": 2,
        "completion_percentage": 100,
        "plan_data": {"days": [{"day": 1}]},
        "created_at": now,
        "updated_at": now,
    }
    fields.update(overrides)
    return PlanView(**fields)


async def create(client: httpx.AsyncClient, auth: dict[str, str], **overrides: Any) -> str:
    response = await client.post("/plans", json=plan_body(**overrides), headers=auth)
    assert response.status_code == 202, response.text
    plan_id: str = response.json()["id"]
    return plan_id


async def test_plan_the_planner_has_not_stored_shows_as_accepted_without_cost(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    await responders.answer("svc.planner.get", lambda req: PlanGetReply(error=NOT_FOUND))

    response = await client.get(f"/plans/{plan_id}", headers=auth)

    assert response.status_code == 200, response.text
    plan = response.json()
    assert (plan["id"], plan["status"], plan["version"]) == (plan_id, "processing", 1)
    assert plan["places"][0]["name"] == "Lisbon"
    # no ledger answering: the plan still comes back, without costs, and says so
    assert plan["total_cost_usd"] is None
    assert plan["cost_status"] == "unavailable"
    assert responders.requests["svc.planner.get"] == [{"user_id": user["id"], "plan_id": plan_id}]


async def test_plan_from_the_planner_with_costs(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    await responders.answer(
        "svc.planner.get", lambda req: PlanGetReply(plan=planner_view(plan_id, user["id"]))
    )
    await responders.answer(
        "svc.ledger.plan_costs", lambda req: PlanCostsReply(costs={plan_id: Decimal("0.4200")})
    )

    plan = (await client.get(f"/plans/{plan_id}", headers=auth)).json()

    assert (plan["status"], plan["version"], plan["plan_data"]) == ("completed", 2, {"days": [{"day": 1}]})
    assert plan["total_cost_usd"] == 0.42
    assert plan["cost_status"] == "ok"
    assert responders.requests["svc.ledger.plan_costs"] == [{"user_id": user["id"], "plan_ids": [plan_id]}]


async def test_planner_not_answering_is_503(client: httpx.AsyncClient, users: Users) -> None:
    _, auth = await users.new()
    plan_id = await create(client, auth)
    response = await client.get(f"/plans/{plan_id}", headers=auth)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["service"] == "planner"


async def test_list_pages_over_own_plans_merging_planner_and_index(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    user, auth = await users.new()
    _, other = await users.new()
    ids = [await create(client, auth, title=f"trip {i}") for i in range(3)]
    await create(client, other)
    newest, middle, oldest = reversed(ids)
    # The planner has stored the two older plans only; the newest is still in flight.
    stored = {
        middle: planner_view(middle, user["id"], title="trip 1 (planned)"),
        oldest: planner_view(oldest, user["id"], title="trip 0 (planned)"),
    }
    await responders.answer(
        "svc.planner.list", lambda req: PlanListReply(items=list(stored.values()), total=2)
    )
    await responders.answer(
        "svc.planner.get",
        lambda req: (
            PlanGetReply(plan=stored[req["plan_id"]])
            if req["plan_id"] in stored
            else PlanGetReply(error=NOT_FOUND)
        ),
    )

    first = (await client.get("/plans?limit=2&offset=0", headers=auth)).json()
    second = (await client.get("/plans?limit=2&offset=2", headers=auth)).json()

    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert [(p["id"], p["title"], p["status"]) for p in first["items"]] == [
        (newest, "trip 2", "processing"),
        (middle, "trip 1 (planned)", "completed"),
    ]
    assert [(p["id"], p["title"]) for p in second["items"]] == [(oldest, "trip 0 (planned)")]
    assert all(r["user_id"] == user["id"] for r in responders.requests["svc.planner.list"])


async def test_list_validates_paging(client: httpx.AsyncClient, users: Users) -> None:
    _, auth = await users.new()
    response = await client.get("/plans?limit=0&offset=-1", headers=auth)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"limit", "offset"}


async def test_versions_are_proxied(client: httpx.AsyncClient, users: Users, responders: Responders) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    version = PlanVersionView(
        plan_id=plan_id, version=1, status="completed", request={"title": "x"}, created_at=datetime.now(UTC)
    )
    await responders.answer("svc.planner.versions", lambda req: PlanVersionsReply(items=[version]))
    await responders.answer(
        "svc.planner.version",
        lambda req: (
            PlanVersionReply(version=version)
            if req["version"] == 1
            else PlanVersionReply(error=RpcError(status=404, title="Not Found", detail="no such version"))
        ),
    )

    listed = await client.get(f"/plans/{plan_id}/versions", headers=auth)
    one = await client.get(f"/plans/{plan_id}/versions/1", headers=auth)
    missing = await client.get(f"/plans/{plan_id}/versions/7", headers=auth)

    assert [v["version"] for v in listed.json()["items"]] == [1]
    assert one.json()["plan_id"] == plan_id
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert responders.requests["svc.planner.version"][0] == {
        "user_id": user["id"],
        "plan_id": plan_id,
        "version": 1,
    }


PER_PLAN_ROUTES = [
    ("GET", "/plans/{id}", None),
    ("PUT", "/plans/{id}", {"feedback": "more museums"}),
    ("POST", "/plans/{id}/cancel", None),
    ("POST", "/plans/{id}/decision", {"approve": True}),
    ("DELETE", "/plans/{id}", None),
    ("GET", "/plans/{id}/versions", None),
    ("GET", "/plans/{id}/versions/1", None),
    ("GET", "/plans/{id}/events", None),
    ("GET", "/plans/{id}/similar", None),
    ("GET", "/costs/summary?plan_id={id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PER_PLAN_ROUTES)
async def test_another_users_plan_is_404_everywhere(
    client: httpx.AsyncClient,
    users: Users,
    responders: Responders,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    _, owner = await users.new()
    _, intruder = await users.new()
    plan_id = await create(client, owner)
    # Services that would happily answer: the 404 must come from the gateway's own check.
    answered: list[str] = []

    def spy(reply: Any) -> Any:
        def handler(req: dict[str, Any]) -> Any:
            answered.append(str(req))
            return reply

        return handler

    await responders.answer("svc.planner.get", spy(PlanGetReply(plan=planner_view(plan_id, "x"))))
    await responders.answer(
        "svc.vectors.similar",
        spy(SearchReply(hits=[SearchHit(plan_id=plan_id, version=1, title="t", score=1.0)])),
    )

    response = await client.request(method, path.format(id=plan_id), json=body, headers=intruder)
    unknown = await client.request(method, path.format(id="no-such-plan"), json=body, headers=intruder)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() | {"instance": None} == unknown.json() | {"instance": None}
    assert answered == []
    # and the owner still has it
    assert (await client.get(f"/plans/{plan_id}/versions", headers=owner)).status_code != 404
