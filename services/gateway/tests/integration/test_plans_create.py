"""POST /plans against real NATS + Postgres: 202 and a PlanCreate on PLAN_COMMANDS with the
destinations resolved; idempotency; bad input is a problem+json naming the field and
publishes nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from tripmesh_contracts import PlanCreate
from tripmesh_contracts.rpc import BudgetCheckReply
from tripmesh_gateway.domain import create_message_id

from .conftest import Responders, Users, commands_of

pytestmark = pytest.mark.integration


def plan_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Food in Portugal",
        "description": "pastries and fado",
        "destinations": ["Lisbon", "Porto"],
        "origin": "London, UK",
        "start_date": "2027-05-01",
        "end_date": "2027-05-06",
        "budget_total": 2500,
        "budget_currency": "EUR",
        "traveler_count": 2,
        "preferences": {"interests": ["food", "history"]},
    }
    body.update(overrides)
    return body


async def test_create_is_accepted_and_published_resolved(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    response = await client.post("/plans", json=plan_body(), headers=auth)

    assert response.status_code == 202, response.text
    plan = response.json()
    assert plan["status"] == "processing"
    assert plan["version"] == 1
    assert plan["user_id"] == user["id"]
    assert plan["destinations"] == ["Lisbon", "Porto"]
    assert plan["budget_total"] == 2500.0
    assert plan["budget_currency"] == "EUR"
    assert response.headers["location"] == f"/api/v1/plans/{plan['id']}"

    published = await commands_of(js, user["id"])
    assert [m.subject for m in published] == ["plans.cmd.create"]
    assert published[0].headers is not None
    assert published[0].headers["Nats-Msg-Id"] == create_message_id(plan["id"])
    assert published[0].data is not None
    command = PlanCreate.from_bytes(published[0].data)
    assert command.plan_id == plan["id"]
    assert [(p.name, p.country_code, p.iata) for p in command.request.destinations] == [
        ("Lisbon", "PT", "LIS"),
        ("Porto", "PT", "OPO"),
    ]
    assert command.request.origin is not None
    assert command.request.origin.country_code == "GB"


async def test_same_idempotency_key_and_body_gives_the_same_plan_once(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    headers = {**auth, "Idempotency-Key": "trip-42"}
    first = await client.post("/plans", json=plan_body(), headers=headers)
    # same body, different key order and number spelling: still the same request
    reordered = dict(reversed(list(plan_body(budget_total="2500.00").items())))
    second = await client.post("/plans", json=reordered, headers=headers)

    assert first.status_code == second.status_code == 202, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert len(await commands_of(js, user["id"])) == 1


async def test_same_idempotency_key_with_another_body_is_refused(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    headers = {**auth, "Idempotency-Key": "trip-43"}
    first = await client.post("/plans", json=plan_body(), headers=headers)
    other = await client.post("/plans", json=plan_body(title="Another trip"), headers=headers)

    assert first.status_code == 202
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert len(await commands_of(js, user["id"])) == 1


async def test_idempotency_keys_are_per_user(client: httpx.AsyncClient, users: Users) -> None:
    _, ana = await users.new()
    _, bob = await users.new()
    a = await client.post("/plans", json=plan_body(), headers={**ana, "Idempotency-Key": "same"})
    b = await client.post("/plans", json=plan_body(), headers={**bob, "Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


BAD_INPUTS = [
    pytest.param(plan_body(destinations=["Lisbon", "Lisbn"]), "destinations[1]", id="unknown-destination"),
    pytest.param(plan_body(destinations=["Portland"]), "destinations[0]", id="ambiguous-destination"),
    pytest.param(plan_body(origin="Xqzzyville"), "origin", id="unknown-origin"),
    pytest.param(plan_body(end_date="2027-04-30"), "end_date", id="end-before-start"),
    pytest.param(plan_body(budget_total=-1), "budget_total", id="negative-budget"),
    pytest.param(plan_body(traveler_count=51), "traveler_count", id="too-many-travellers"),
    pytest.param(plan_body(destinations=[]), "destinations", id="no-destinations"),
    pytest.param(plan_body(budget_currency="XYZ"), "budget_currency", id="unknown-currency"),
    pytest.param(plan_body(start_date="next tuesday"), "start_date", id="bad-date"),
    pytest.param(plan_body(destination="Lisbon"), "destination", id="unknown-field"),
    pytest.param({k: v for k, v in plan_body().items() if k != "title"}, "title", id="missing-title"),
]


@pytest.mark.parametrize(("body", "field"), BAD_INPUTS)
async def test_bad_input_names_the_field_and_publishes_nothing(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext, body: dict[str, Any], field: str
) -> None:
    user, auth = await users.new()
    response = await client.post("/plans", json=body, headers=auth)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await commands_of(js, user["id"]) == []


async def test_unresolvable_places_come_with_suggestions(client: httpx.AsyncClient, users: Users) -> None:
    _, auth = await users.new()
    response = await client.post(
        "/plans", json=plan_body(destinations=["Lisbon", "Lisbn", "Portland"]), headers=auth
    )
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert set(errors) == {"destinations[1]", "destinations[2]"}
    assert "Lisbon, PT" in errors["destinations[1]"]["suggestions"]
    assert any("Maine" in s for s in errors["destinations[2]"]["suggestions"])
    assert any("Oregon" in s for s in errors["destinations[2]"]["suggestions"])


async def test_malformed_json_is_a_problem_naming_the_body(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    response = await client.post(
        "/plans",
        content=b'{"title": "x", "destinations": [',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "body"
    assert "malformed JSON" in response.json()["errors"][0]["message"]
    assert await commands_of(js, user["id"]) == []


async def test_missing_token_is_401_and_publishes_nothing(
    client: httpx.AsyncClient, js: JetStreamContext
) -> None:
    before = len(await _all_creates(js))
    response = await client.post("/plans", json=plan_body())
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert len(await _all_creates(js)) == before


async def _all_creates(js: JetStreamContext) -> list[Any]:
    from .conftest import messages

    return await messages(js, "PLAN_COMMANDS", "plans.cmd.create")


async def test_budget_cap_reached_is_402_and_publishes_nothing(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext, responders: Responders
) -> None:
    user, auth = await users.new()
    await responders.answer(
        "svc.ledger.budget.check",
        lambda req: BudgetCheckReply(allowed=False, reason="daily cap reached", daily_cap_usd=1),
    )
    response = await client.post("/plans", json=plan_body(), headers=auth)

    assert response.status_code == 402
    assert response.json()["detail"] == "daily cap reached"
    assert responders.requests["svc.ledger.budget.check"] == [{"user_id": user["id"], "tier": "free"}]
    assert await commands_of(js, user["id"]) == []


def test_plan_body_fixture_is_valid_json() -> None:
    json.dumps(plan_body())
