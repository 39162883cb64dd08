"""Accounts over HTTP against real Postgres: signup, login, me, refresh rotation."""

from __future__ import annotations

import httpx
import pytest

from .conftest import PASSWORD, Users

pytestmark = pytest.mark.integration


async def test_signup_login_me(client: httpx.AsyncClient, users: Users) -> None:
    user = await users.signup()
    assert user["subscription_tier"] == "free"
    assert {"id", "email", "username", "created_at"} <= set(user)
    assert "password_hash" not in user

    tokens = await users.login(user["email"].upper())  # e-mail is case-insensitive
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60

    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert me.json()["last_login_at"] is not None


async def test_email_is_unique_regardless_of_case(client: httpx.AsyncClient, users: Users) -> None:
    user = await users.signup()
    again = await client.post(
        "/auth/signup",
        json={
            "email": user["email"].upper(),
            "username": "someone_else",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["errors"][0]["field"] == "email"


@pytest.mark.parametrize(
    ("password", "confirm", "field"),
    [
        ("short", "short", "password"),
        ("a-long-enough-passphrase", "a-different-passphrase", "password_confirm"),
    ],
)
async def test_signup_password_policy(
    client: httpx.AsyncClient, password: str, confirm: str, field: str
) -> None:
    response = await client.post(
        "/auth/signup",
        json={
            "email": "policy@example.com",
            "username": "policy_user",
            "password": password,
            "password_confirm": confirm,
        },
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_password_equal_to_username_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/signup",
        json={
            "email": "sameness@example.com",
            "username": "sameness_user_1",
            "password": "sameness_user_1",
            "password_confirm": "sameness_user_1",
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "password", "message": "must not be your e-mail address or username"}
    ]


async def test_wrong_password_is_401(client: httpx.AsyncClient, users: Users) -> None:
    user = await users.signup()
    response = await client.post("/auth/login", json={"email": user["email"], "password": "not-the-password"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    unknown = await client.post("/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
    assert unknown.status_code == 401


async def test_refresh_rotates_and_works_once(client: httpx.AsyncClient, users: Users) -> None:
    user = await users.signup()
    first = await users.login(user["email"])

    rotated = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert me.json()["id"] == user["id"]

    replay = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.headers["content-type"] == "application/problem+json"
    # Reuse of a used token revokes its family: the legitimately rotated one dies too.
    after_reuse = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after_reuse.status_code == 401


async def test_unknown_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/refresh", json={"refresh_token": "made-up"})
    assert response.status_code == 401
