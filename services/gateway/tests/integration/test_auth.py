"""Accounts over HTTP against real Postgres: signup, login, me, refresh rotation."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from tripmesh_gateway.signing_key import key_path

from .conftest import PASSWORD, RunningGateway, Users

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


def forged(key: bytes, **overrides: Any) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": "tripmesh-gateway",
        "aud": "tripmesh-api",
        "sub": "x",
        "jti": "j",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **overrides,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="HS256")


async def test_every_auth_failure_is_401_problem_with_a_bearer_challenge(
    client: httpx.AsyncClient, users: Users, gateway: RunningGateway
) -> None:
    user, auth = await users.new()
    key = key_path(gateway.settings.data_dir).read_text().strip().encode()
    sid = jwt.decode(auth["Authorization"].split()[1], options={"verify_signature": False})["sid"]
    now = int(datetime.now(UTC).timestamp())
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    unsigned = (
        ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
            for part in (
                {"alg": "none", "typ": "JWT"},
                {
                    "iss": "tripmesh-gateway",
                    "aud": "tripmesh-api",
                    "sub": user["id"],
                    "sid": sid,
                    "jti": "j",
                    "iat": now,
                    "exp": now + 300,
                },
            )
        )
        + "."
    )
    cases = {
        "missing": {},
        "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
        "empty bearer": {"Authorization": "Bearer"},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "wrong key": {"Authorization": f"Bearer {forged(b'z' * 64, sub=user['id'], sid=sid)}"},
        "wrong audience": {"Authorization": f"Bearer {forged(key, sub=user['id'], sid=sid, aud='other')}"},
        "wrong issuer": {"Authorization": f"Bearer {forged(key, sub=user['id'], sid=sid, iss='other')}"},
        "expired": {"Authorization": f"Bearer {forged(key, sub=user['id'], sid=sid, exp=an_hour_ago)}"},
        "unknown user": {"Authorization": f"Bearer {forged(key, sub='no-such-user', sid=sid)}"},
        "no session": {"Authorization": f"Bearer {forged(key, sub=user['id'])}"},
        "unknown session": {"Authorization": f"Bearer {forged(key, sub=user['id'], sid='nope')}"},
    }
    # the control: the same forging with every claim right is accepted
    good = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {forged(key, sub=user['id'], sid=sid)}"}
    )
    assert good.status_code == 200
    assert (await client.get("/auth/me", headers=auth)).status_code == 200
    for name, headers in cases.items():
        for path in ("/auth/me", "/plans", "/costs/summary"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, (name, path, response.text)
            assert response.headers["content-type"] == "application/problem+json", name
            assert response.headers["www-authenticate"].startswith("Bearer"), name
