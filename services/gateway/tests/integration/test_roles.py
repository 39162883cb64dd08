"""Roles: every account starts as `user`; an operator makes one an admin with the CLI
(`python -m tripmesh_gateway grant-admin <email>`) or GATEWAY_ADMIN_EMAILS at start-up."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
import pytest
from tripmesh_gateway.app import create_app

from .conftest import RunningGateway, Users, start_uvicorn

pytestmark = pytest.mark.integration


async def cli(gateway: RunningGateway, *args: str) -> tuple[int, str]:
    env = {**os.environ, "GATEWAY_DATABASE_URL": gateway.settings.database_url, "LOG_FORMAT": "json"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tripmesh_gateway",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def role(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    me = await client.get("/auth/me", headers=auth)
    assert me.status_code == 200, me.text
    return str(me.json()["role"])


async def test_the_cli_grants_and_revokes_admin(
    client: httpx.AsyncClient, users: Users, gateway: RunningGateway
) -> None:
    user, auth = await users.new()
    assert user["role"] == "user"  # signup
    assert await role(client, auth) == "user"

    granted = await cli(gateway, "grant-admin", user["email"].upper())  # e-mail in any case
    assert granted[0] == 0, granted[1]
    assert f"{user['email']} ({user['id']}) is now admin" in granted[1]
    assert await role(client, auth) == "admin"  # the same token: the role is read per request

    revoked = await cli(gateway, "revoke-admin", user["email"])
    assert revoked[0] == 0, revoked[1]
    assert await role(client, auth) == "user"

    nobody = await cli(gateway, "grant-admin", "nobody-at-all@example.com")
    assert nobody[0] == 1
    assert "no account with e-mail nobody-at-all@example.com" in nobody[1]
    usage = await cli(gateway, "grant-admin")
    assert usage[0] == 2  # argparse: the e-mail is required


async def test_admin_emails_are_granted_at_start_up(
    client: httpx.AsyncClient, users: Users, gateway: RunningGateway
) -> None:
    first, first_auth = await users.new()
    second, second_auth = await users.new()
    bystander, bystander_auth = await users.new()
    settings = gateway.settings.model_copy(
        update={"admin_emails": [first["email"], second["email"].upper(), "not-signed-up@example.com"]}
    )
    # A second gateway on the same bus, database and signing key, started with the setting.
    server, task, _ = await start_uvicorn(create_app(settings))
    server.should_exit = True
    await task

    assert await role(client, first_auth) == "admin"
    assert await role(client, second_auth) == "admin"
    assert await role(client, bystander_auth) == "user"
    assert bystander["role"] == "user"
