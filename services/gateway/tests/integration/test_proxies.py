"""Thin proxies to svc.ledger.summary and svc.vectors.*: user_id always from the token,
ownership checked first, service errors and silence mapped to problem+json."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from tripmesh_contracts.rpc import CostSummaryReply, RpcError, SearchHit, SearchReply

from .conftest import Responders, Users
from .test_plans_read import create

pytestmark = pytest.mark.integration


async def test_cost_summary_for_the_caller_and_one_own_plan(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    await responders.answer(
        "svc.ledger.summary",
        lambda req: CostSummaryReply(
            user_id=req["user_id"], plan_id=req["plan_id"], calls=3, total_cost_usd=Decimal("0.12")
        ),
    )

    # naming another user is an admin's privilege (test_accounts.py): 403, nothing asked
    other = await client.get("/costs/summary?period=month&user_id=someone-else", headers=auth)
    assert other.status_code == 403, other.text
    overall = await client.get(f"/costs/summary?period=month&user_id={user['id']}", headers=auth)
    one_plan = await client.get(
        f"/costs/summary?plan_id={plan_id}&period=custom&start=2027-01-01", headers=auth
    )

    assert overall.status_code == 200, overall.text
    assert overall.json()["calls"] == 3
    assert "error" not in overall.json()
    assert one_plan.json()["plan_id"] == plan_id
    requests = responders.requests["svc.ledger.summary"]
    assert [r["user_id"] for r in requests] == [user["id"], user["id"]]
    assert (requests[0]["period"], requests[0]["plan_id"]) == ("month", None)
    assert (requests[1]["period"], requests[1]["start"]) == ("custom", "2027-01-01")


async def test_cost_summary_validation_and_outage(client: httpx.AsyncClient, users: Users) -> None:
    _, auth = await users.new()
    bad_period = await client.get("/costs/summary?period=year", headers=auth)
    reversed_range = await client.get(
        "/costs/summary?period=custom&start=2027-02-01&end=2027-01-01", headers=auth
    )
    nobody_home = await client.get("/costs/summary", headers=auth)

    assert bad_period.status_code == 422
    assert bad_period.json()["errors"][0]["field"] == "period"
    assert reversed_range.json()["errors"][0]["field"] == "end"
    assert nobody_home.status_code == 503
    assert nobody_home.json()["service"] == "ledger"


async def test_service_errors_keep_their_status(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    _, auth = await users.new()
    await responders.answer(
        "svc.ledger.summary",
        lambda req: CostSummaryReply(error=RpcError(status=409, title="Conflict", detail="rebuilding")),
    )
    response = await client.get("/costs/summary", headers=auth)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "rebuilding"


async def test_search_and_similar_only_return_the_callers_plans(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    user, auth = await users.new()
    _, other_auth = await users.new()
    mine = await create(client, auth)
    also_mine = await create(client, auth, title="Fjords")
    theirs = await create(client, other_auth)
    hits = [SearchHit(plan_id=p, version=1, title="t", score=0.9) for p in (also_mine, theirs)]
    await responders.answer("svc.vectors.search", lambda req: SearchReply(hits=hits))
    await responders.answer("svc.vectors.similar", lambda req: SearchReply(hits=hits))

    search = await client.get("/search/plans?q=mountain%20walking&limit=3&country=no", headers=auth)
    similar = await client.get(f"/plans/{mine}/similar?limit=4", headers=auth)

    assert [h["plan_id"] for h in search.json()["hits"]] == [also_mine]
    assert [h["plan_id"] for h in similar.json()["hits"]] == [also_mine]
    search_request = responders.requests["svc.vectors.search"][0]
    assert (search_request["user_id"], search_request["q"], search_request["limit"]) == (
        user["id"],
        "mountain walking",
        3,
    )
    assert search_request["filters"]["country"] == "NO"
    similar_request = responders.requests["svc.vectors.similar"][0]
    assert (similar_request["user_id"], similar_request["plan_id"], similar_request["limit"]) == (
        user["id"],
        mine,
        4,
    )


async def test_search_needs_a_query(client: httpx.AsyncClient, users: Users) -> None:
    _, auth = await users.new()
    response = await client.get("/search/plans", headers=auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "q"
