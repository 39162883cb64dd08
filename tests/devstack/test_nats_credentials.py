"""The stack wires clients' own NATS credentials (issue #8): its NATS has our auth callout,
the gateway gets the issuer seed and answers, and a user's token reads that user's events.
The permission matrix itself is services/gateway/tests/integration/test_nats_credentials.py."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import nats
import pytest
from nats.errors import Error as NatsError
from tripmesh_devstack import Stack, default_services

PASSWORD = "a-long-enough-passphrase"
LIVENESS = 10.0


def test_stack_gateway_issues_nats_credentials_the_broker_honours(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path / "data", [s for s in default_services(free_ports=True) if s.name == "gateway"], console=None
    )
    stack.start()
    try:
        assert (tmp_path / "data" / "nats" / "callout-issuer.seed").stat().st_mode & 0o077 == 0
        api = stack.gateway_url + "/api/v1"
        tag = uuid.uuid4().hex[:10]
        with httpx.Client(timeout=20) as http:
            account = {"email": f"s{tag}@example.com", "password": PASSWORD}
            signup = {**account, "username": f"s_{tag}", "password_confirm": PASSWORD}
            assert http.post(f"{api}/auth/signup", json=signup).status_code == 201
            token = http.post(f"{api}/auth/login", json=account).json()["access_token"]
            response = http.post(f"{api}/auth/nats-credentials", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        creds = response.json()
        assert stack.nats is not None and creds["nats_url"] == stack.nats.url
        asyncio.run(_read_own_events(creds, stack.nats_url))
    finally:
        stack.stop()


async def _read_own_events(creds: dict[str, str], admin_url: str) -> None:
    me = creds["inbox_prefix"].removeprefix("_INBOX.")
    nc = await nats.connect(creds["nats_url"], token=creds["token"], inbox_prefix=creds["inbox_prefix"])
    admin = await nats.connect(admin_url)
    try:
        live = await nc.subscribe(f"plans.evt.{me}.>")
        await nc.flush()
        await admin.jetstream().publish(f"plans.evt.{me}.p1.accepted", b"{}")
        assert (await live.next_msg(timeout=LIVENESS)).subject == f"plans.evt.{me}.p1.accepted"
        with pytest.raises(NatsError, match="Authorization Violation"):
            await nats.connect(creds["nats_url"], token="forged", allow_reconnect=False)
    finally:
        await nc.close()
        await admin.close()
