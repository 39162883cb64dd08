"""Accounts over HTTP against real Postgres: sessions (logout, reuse revokes the session,
password change revokes the others), profile update, API keys, admins reading costs."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import httpx
import psycopg
import pytest
from tripmesh_contracts.rpc import CostSummaryReply
from tripmesh_gateway.admin import set_role_command
from tripmesh_gateway.store import Role

from .conftest import PASSWORD, Responders, RunningGateway, Users
from .test_plans_create import plan_body

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_logout_revokes_the_session_at_once(client: httpx.AsyncClient, users: Users) -> None:
    user = await users.signup()
    first = await users.login(user["email"])
    second = await users.login(user["email"])
    assert (await client.post("/auth/logout", headers=bearer(first["access_token"]))).status_code == 204
    assert (await client.get("/auth/me", headers=bearer(first["access_token"]))).status_code == 401
    refreshed = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 401
    # the other login is untouched, until logout everywhere
    assert (await client.get("/auth/me", headers=bearer(second["access_token"]))).status_code == 200
    everywhere = await client.post("/auth/logout?everywhere=true", headers=bearer(second["access_token"]))
    assert everywhere.status_code == 204
    assert (await client.get("/auth/me", headers=bearer(second["access_token"]))).status_code == 401


async def test_refresh_reuse_kills_the_sessions_access_tokens(
    client: httpx.AsyncClient, users: Users
) -> None:
    user = await users.signup()
    first = await users.login(user["email"])
    rotated = (await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    assert (await client.get("/auth/me", headers=bearer(rotated["access_token"]))).status_code == 200
    reuse = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert (await client.get("/auth/me", headers=bearer(rotated["access_token"]))).status_code == 401


async def test_password_change_revokes_other_sessions(client: httpx.AsyncClient, users: Users) -> None:
    user = await users.signup()
    here = await users.login(user["email"])
    elsewhere = await users.login(user["email"])
    new = "another-long-passphrase"
    wrong = await client.post(
        "/auth/password",
        json={"current_password": "nope-nope-nope", "new_password": new, "new_password_confirm": new},
        headers=bearer(here["access_token"]),
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "current_password"
    weak = await client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "short", "new_password_confirm": "short"},
        headers=bearer(here["access_token"]),
    )
    assert weak.status_code == 422 and weak.json()["errors"][0]["field"] == "new_password"
    changed = await client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": new, "new_password_confirm": new},
        headers=bearer(here["access_token"]),
    )
    assert changed.status_code == 204, changed.text
    assert (await client.get("/auth/me", headers=bearer(here["access_token"]))).status_code == 200
    assert (await client.get("/auth/me", headers=bearer(elsewhere["access_token"]))).status_code == 401
    gone = await client.post("/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]})
    assert gone.status_code == 401
    old = await client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert old.status_code == 401
    assert (await users.login(user["email"], new))["access_token"]


async def test_profile_update(client: httpx.AsyncClient, users: Users) -> None:
    user, auth = await users.new()
    other = await users.signup()
    response = await client.patch(
        "/auth/me",
        json={"first_name": "Ana", "last_name": "Silva", "preferences": {"pace": "slow"}},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    me = response.json()
    assert (me["first_name"], me["last_name"], me["preferences"]) == ("Ana", "Silva", {"pace": "slow"})
    assert me["username"] == user["username"]
    taken = await client.patch("/auth/me", json={"username": other["username"].upper()}, headers=auth)
    assert taken.status_code == 409 and taken.json()["errors"][0]["field"] == "username"
    bad = await client.patch("/auth/me", json={"username": "a b", "email": "x@y.org"}, headers=auth)
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"username", "email"}
    renamed = await client.patch("/auth/me", json={"username": "renamed_" + user["id"][:8]}, headers=auth)
    assert renamed.json()["username"] == "renamed_" + user["id"][:8]


async def test_signup_username_is_unique_regardless_of_case(client: httpx.AsyncClient, users: Users) -> None:
    user = await users.signup()
    again = await client.post(
        "/auth/signup",
        json={
            "email": "fresh-" + user["email"],
            "username": user["username"].upper(),
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "username"


async def test_api_keys(
    client: httpx.AsyncClient, users: Users, gateway: RunningGateway, responders: Responders
) -> None:
    user, auth = await users.new()
    created = await client.post("/auth/api-keys", json={"name": "ci", "expires_in_days": 30}, headers=auth)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("tmk_") and len(key) > 40
    assert key.startswith(created.json()["prefix"])
    # stored hashed: the database has its SHA-256, never the key
    async with await psycopg.AsyncConnection.connect(gateway.settings.database_url) as conn:
        cur = await conn.execute("SELECT key_hash FROM accounts.api_keys WHERE user_id = %s", (user["id"],))
        rows = await cur.fetchall()
    assert rows == [(hashlib.sha256(key.encode()).digest(),)]

    # the key acts as its owner
    me = await client.get("/auth/me", headers=bearer(key))
    assert me.status_code == 200 and me.json()["id"] == user["id"]
    plan = await client.post("/plans", json=plan_body(), headers=bearer(key))
    assert plan.status_code == 202, plan.text
    assert plan.json()["user_id"] == user["id"]
    # ... but cannot manage keys or the password
    assert (await client.post("/auth/api-keys", json={"name": "x"}, headers=bearer(key))).status_code == 403
    assert (await client.get("/auth/api-keys", headers=bearer(key))).status_code == 403

    listed = (await client.get("/auth/api-keys", headers=auth)).json()["items"]
    assert [k["id"] for k in listed] == [created.json()["id"]]
    assert "key" not in listed[0] and listed[0]["last_used_at"] is not None
    _, stranger = await users.new()
    foreign = await client.delete(f"/auth/api-keys/{created.json()['id']}", headers=stranger)
    assert foreign.status_code == 404
    assert (await client.delete(f"/auth/api-keys/{created.json()['id']}", headers=auth)).status_code == 204
    assert (await client.get("/auth/me", headers=bearer(key))).status_code == 401


async def test_admin_reads_any_users_costs_but_not_plans(
    client: httpx.AsyncClient, users: Users, gateway: RunningGateway, responders: Responders
) -> None:
    await responders.answer(
        "svc.ledger.summary",
        lambda req: CostSummaryReply(user_id=req["user_id"], calls=1, total_cost_usd=Decimal("0.5")),
    )
    someone, someone_auth = await users.new()
    boss, boss_auth = await users.new()
    assert await set_role_command(gateway.settings, boss["email"], Role.ADMIN) == 0

    summary = await client.get(f"/costs/summary?user_id={someone['id']}", headers=boss_auth)
    assert summary.status_code == 200, summary.text
    assert summary.json()["user_id"] == someone["id"]
    refused = await client.get(f"/costs/summary?user_id={boss['id']}", headers=someone_auth)
    assert refused.status_code == 403
    missing = await client.get("/costs/summary?user_id=nobody", headers=boss_auth)
    assert missing.status_code == 404

    plan = await client.post("/plans", json=plan_body(), headers=someone_auth)
    assert plan.status_code == 202
    plan_id = plan.json()["id"]
    assert (await client.get(f"/plans/{plan_id}", headers=boss_auth)).status_code == 404
    assert (await client.get(f"/plans?user_id={someone['id']}", headers=boss_auth)).json()["total"] == 0


async def test_sessions_are_listed_and_one_can_be_ended(client: httpx.AsyncClient, users: Users) -> None:
    user = await users.signup()
    laptop = await users.login(user["email"])
    phone = await users.login(user["email"])
    listed = await client.get("/auth/sessions", headers=bearer(laptop["access_token"]))
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) >= 2 and sum(1 for s in items if s["current"]) == 1
    current = next(s["id"] for s in items if s["current"])
    phone_id = next(s["id"] for s in items if not s["current"])

    # someone else cannot see or end them: 404, as for any resource not theirs
    other = await users.login((await users.signup())["email"])
    ended_by_other = await client.delete(f"/auth/sessions/{phone_id}", headers=bearer(other["access_token"]))
    assert ended_by_other.status_code == 404
    assert (await client.get("/auth/me", headers=bearer(phone["access_token"]))).status_code == 200

    ended = await client.delete(f"/auth/sessions/{phone_id}", headers=bearer(laptop["access_token"]))
    assert ended.status_code == 204
    assert (await client.get("/auth/me", headers=bearer(phone["access_token"]))).status_code == 401
    refreshed = await client.post("/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refreshed.status_code == 401
    again = await client.delete(f"/auth/sessions/{phone_id}", headers=bearer(laptop["access_token"]))
    assert again.status_code == 404
    remaining = (await client.get("/auth/sessions", headers=bearer(laptop["access_token"]))).json()["items"]
    assert current in {s["id"] for s in remaining} and phone_id not in {s["id"] for s in remaining}
