"""Plan sharing against a played planner: the planner is asked with the owner's user id, the
ledger never for a reader, costs never leave; owner-only management (404 for the rest),
validation of share bodies, and revocation / expiry taking effect on the next request."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tripmesh_contracts.rpc import PlanCostsReply, PlanGetReply, PlanVersionsReply, PlanVersionView

from .conftest import Responders, Users
from .test_plans_read import create, planner_view

pytestmark = pytest.mark.integration

AGENT_RESULTS = {"planning": {"status": "ok", "model": "m", "cost_usd": "0.12", "prompt_tokens": 10}}


async def play_planner(responders: Responders, plan_id: str, owner_id: str) -> None:
    await responders.answer(
        "svc.planner.get",
        lambda req: PlanGetReply(plan=planner_view(plan_id, owner_id, agent_results=AGENT_RESULTS)),
    )
    now = datetime.now(UTC)
    version = PlanVersionView(
        plan_id=plan_id,
        version=1,
        status="completed",
        request={},
        agent_results=AGENT_RESULTS,
        created_at=now,
    )
    await responders.answer("svc.planner.versions", lambda req: PlanVersionsReply(items=[version]))
    await responders.answer("svc.ledger.plan_costs", lambda req: PlanCostsReply(costs={plan_id: "0.12"}))


async def test_named_reader_and_link_see_the_plan_without_costs(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    owner, owner_auth = await users.new()
    reader, reader_auth = await users.new()
    plan_id = await create(client, owner_auth)
    await play_planner(responders, plan_id, owner["id"])

    r = await client.post(f"/plans/{plan_id}/share", json={"type": "user", "user": reader["email"].upper()})
    assert r.status_code == 401
    r = await client.post(
        f"/plans/{plan_id}/share", json={"type": "user", "user": reader["email"].upper()}, headers=owner_auth
    )
    assert r.status_code == 201, r.text
    assert r.json()["shared_with"]["id"] == reader["id"] and r.json()["token"] is None

    seen = (await client.get(f"/plans/{plan_id}", headers=reader_auth)).json()
    assert seen["access"] == "shared" and "total_cost_usd" not in seen and "cost_status" not in seen
    assert seen["agent_results"] == {"planning": {"status": "ok"}}
    versions = (await client.get(f"/plans/{plan_id}/versions", headers=reader_auth)).json()
    assert versions["items"][0]["agent_results"] == {"planning": {"status": "ok"}}
    # the planner was asked as the owner, the ledger only for the owner's own read
    assert {q["user_id"] for q in responders.requests["svc.planner.get"]} == {owner["id"]}
    assert "svc.ledger.plan_costs" not in responders.requests
    owners_view = (await client.get(f"/plans/{plan_id}", headers=owner_auth)).json()
    assert owners_view["total_cost_usd"] == 0.12 and owners_view["agent_results"] == AGENT_RESULTS

    link = (await client.post(f"/plans/{plan_id}/share", json={"type": "link"}, headers=owner_auth)).json()
    token = link["token"]
    assert token.startswith("tms_") and link["url"] == f"/api/v1/shared/{token}"
    anonymous = await client.get(f"/shared/{token}")
    assert anonymous.status_code == 200 and "total_cost_usd" not in anonymous.json()
    assert (await client.get(f"/shared/{token}x")).status_code == 404
    assert (await client.get("/shared/not-a-token")).status_code == 404
    listed = (await client.get(f"/plans/{plan_id}/shares", headers=owner_auth)).json()["items"]
    assert [s["type"] for s in listed] == ["user", "link"] and listed[1]["access_count"] == 1
    assert token not in str(listed)


async def test_only_the_owner_manages_shares_and_bad_bodies_are_422(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    owner, owner_auth = await users.new()
    reader, reader_auth = await users.new()
    plan_id = await create(client, owner_auth)
    await play_planner(responders, plan_id, owner["id"])
    share = await client.post(
        f"/plans/{plan_id}/share", json={"type": "user", "user": reader["id"]}, headers=owner_auth
    )
    share_id = share.json()["id"]

    for method, path, body in [
        ("POST", f"/plans/{plan_id}/share", {"type": "link"}),
        ("GET", f"/plans/{plan_id}/shares", None),
        ("DELETE", f"/plans/{plan_id}/shares/{share_id}", None),
        ("DELETE", f"/plans/{plan_id}", None),
        ("PUT", f"/plans/{plan_id}", {"feedback": "x"}),
        ("POST", f"/plans/{plan_id}/cancel", None),
    ]:
        r = await client.request(method, path, json=body, headers=reader_auth)
        assert r.status_code == 404, (method, path, r.text)

    bad: list[tuple[dict[str, Any], str]] = [
        ({"type": "user"}, "user"),
        ({"type": "link", "user": reader["id"]}, "user"),
        ({"type": "user", "user": "nobody-at-all@example.com"}, "user"),
        ({"type": "user", "user": owner["email"]}, "user"),
        ({"type": "link", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"type": "link", "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"type": "group"}, "type"),
    ]
    for body, field in bad:
        r = await client.post(f"/plans/{plan_id}/share", json=body, headers=owner_auth)
        assert r.status_code == 422, (body, r.text)
        assert field in r.text, (body, r.text)


async def test_revoked_and_expired_shares_stop_at_once(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    owner, owner_auth = await users.new()
    reader, reader_auth = await users.new()
    plan_id = await create(client, owner_auth)
    await play_planner(responders, plan_id, owner["id"])

    share = await client.post(
        f"/plans/{plan_id}/share", json={"type": "user", "user": reader["username"]}, headers=owner_auth
    )
    assert (await client.get(f"/plans/{plan_id}", headers=reader_auth)).status_code == 200
    listed = (await client.get("/plans", params={"shared": "true"}, headers=reader_auth)).json()
    assert [p["id"] for p in listed["items"]] == [plan_id] and listed["total"] == 1
    revoked = await client.delete(f"/plans/{plan_id}/shares/{share.json()['id']}", headers=owner_auth)
    assert revoked.status_code == 204
    assert (await client.get(f"/plans/{plan_id}", headers=reader_auth)).status_code == 404
    assert (await client.get("/plans", params={"shared": "true"}, headers=reader_auth)).json()["total"] == 0

    expires = datetime.now(UTC) + timedelta(seconds=2)
    link = await client.post(
        f"/plans/{plan_id}/share",
        json={"type": "link", "expires_at": expires.isoformat()},
        headers=owner_auth,
    )
    token = link.json()["token"]
    assert (await client.get(f"/shared/{token}")).status_code == 200
    await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 0.3)
    assert (await client.get(f"/shared/{token}")).status_code == 404
    listed_shares = (await client.get(f"/plans/{plan_id}/shares", headers=owner_auth)).json()["items"]
    assert [s["expired"] for s in listed_shares] == [True]

    # a deleted plan takes its shares with it
    again = await client.post(f"/plans/{plan_id}/share", json={"type": "link"}, headers=owner_auth)
    assert (await client.get(f"/shared/{again.json()['token']}")).status_code == 200
    assert (await client.delete(f"/plans/{plan_id}", headers=owner_auth)).status_code == 204
    assert (await client.get(f"/shared/{again.json()['token']}")).status_code == 404
