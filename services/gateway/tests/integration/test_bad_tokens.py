"""Every protected operation in the gateway's OpenAPI document x every way a credential can
be wrong -> 401 problem+json with a Bearer challenge. In-process (ASGI) against the session
gateway's real Postgres and NATS; the 401 comes before any service is asked."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from tripmesh_gateway.signing_key import key_path

from .conftest import RunningGateway, Users

pytestmark = pytest.mark.integration

METHODS = ("get", "post", "put", "patch", "delete")


def protected_operations(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path with placeholders filled) of every operation that declares security."""
    found = []
    for path, item in openapi["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is not None and operation.get("security"):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "someid", path)))
    return found


def b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def forge(key: bytes, **overrides: Any) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": "tripmesh-gateway",
        "aud": "tripmesh-api",
        "jti": "j",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **overrides,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="HS256")


@pytest.fixture
async def asgi(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=15) as http:
        yield http


async def failure_modes(
    asgi: httpx.AsyncClient, users: Users, gateway: RunningGateway
) -> dict[str, dict[str, str]]:
    user, auth = await users.new()
    token = auth["Authorization"].split()[1]
    sid = jwt.decode(token, options={"verify_signature": False})["sid"]
    key = key_path(gateway.settings.data_dir).read_text().strip().encode()
    subject = {"sub": user["id"], "sid": sid}
    now = int(datetime.now(UTC).timestamp())
    unsigned = (
        b64({"alg": "none", "typ": "JWT"})
        + "."
        + b64(
            {
                "iss": "tripmesh-gateway",
                "aud": "tripmesh-api",
                "jti": "j",
                "iat": now,
                "exp": now + 300,
                **subject,
            }
        )
        + "."
    )

    # a session that logged out, and an API key that was revoked
    _, revoked_auth = await users.new()
    assert (await asgi.post("/api/v1/auth/logout", headers=revoked_auth)).status_code == 204
    created = await asgi.post("/api/v1/auth/api-keys", json={"name": "gone"}, headers=auth)
    assert created.status_code == 201, created.text
    revoked_key = created.json()["key"]
    gone = await asgi.delete(f"/api/v1/auth/api-keys/{created.json()['id']}", headers=auth)
    assert gone.status_code == 204

    # the controls: a correctly forged token and the real one are accepted
    good = {"Authorization": f"Bearer {forge(key, **subject)}"}
    assert (await asgi.get("/api/v1/auth/me", headers=good)).status_code == 200
    assert (await asgi.get("/api/v1/auth/me", headers=auth)).status_code == 200

    def bearer(value: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {value}"}

    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    return {
        "missing": {},
        "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
        "empty bearer": {"Authorization": "Bearer "},
        "malformed": bearer("not.a.jwt"),
        "alg none": bearer(unsigned),
        "wrong signature": bearer(forge(b"z" * 64, **subject)),
        "wrong audience": bearer(forge(key, aud="someone-else", **subject)),
        "wrong issuer": bearer(forge(key, iss="someone-else", **subject)),
        "expired": bearer(forge(key, exp=an_hour_ago, **subject)),
        "no session claim": bearer(forge(key, sub=user["id"])),
        "revoked session": revoked_auth,
        "unknown api key": bearer("tmk_" + "A" * 43),
        "revoked api key": bearer(revoked_key),
    }


async def test_every_protected_operation_refuses_every_bad_credential(
    asgi: httpx.AsyncClient, users: Users, gateway: RunningGateway
) -> None:
    operations = protected_operations(gateway.app.openapi())
    # the document must really list the API (a vacuous matrix passes anything)
    paths = {path for _, path in operations}
    assert {"/api/v1/auth/me", "/api/v1/plans", "/api/v1/costs/summary", "/api/v1/auth/api-keys"} <= paths
    assert len(operations) >= 15, operations
    modes = await failure_modes(asgi, users, gateway)
    failures = []
    for method, path in operations:
        for mode, headers in modes.items():
            response = await asgi.request(method, path, headers=headers)
            ok = (
                response.status_code == 401
                and response.headers.get("content-type") == "application/problem+json"
                and response.headers.get("www-authenticate", "").startswith("Bearer")
                and response.json().get("status") == 401
            )
            if not ok:
                failures.append((method, path, mode, response.status_code, response.text[:120]))
    assert failures == [], failures
