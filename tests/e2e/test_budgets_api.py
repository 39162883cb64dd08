"""Issue #6 through the public API on the real stack: budgets kept by the cost-ledger, set by
users (lower/reset only) and admins (anyone, any amount), a cost alert raised by real
ingestion reaching the user's SSE stream (GET /api/v1/events) and /costs/alerts.

The admin is made with the operator's CLI (`python -m tripmesh_gateway grant-admin`) on the
stack's database. Spend is created by publishing usage events as the runners do (a priced
call on the offline stack's stub model costs nothing)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from typing import Any

import pytest
from client import User, UserFactory
from httpx_sse import aconnect_sse
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import UsageEvent

pytestmark = pytest.mark.e2e

BUDGET = "/api/v1/costs/budget"


async def grant_admin(stack: Any, email: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tripmesh_gateway",
        "grant-admin",
        email,
        env={**os.environ, **stack.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


async def first_cost_alert(user: User, timeout: float = 60.0) -> dict[str, Any]:
    """The first event on the user's account stream (a liveness bound, not a speed target)."""
    async with (
        asyncio.timeout(timeout),
        aconnect_sse(user.http, "GET", "/api/v1/events", headers=user.auth, timeout=None) as source,
    ):
        assert source.response.status_code == 200
        async for sse in source.aiter_sse():
            if sse.event == "cost_alert":
                data: dict[str, Any] = json.loads(sse.data)
                return data
    raise AssertionError("the account stream ended")


async def test_budgets_roles_and_a_cost_alert(stack: Any, js: Any, new_user: UserFactory) -> None:
    ana = await new_user("ana")
    bob = await new_user("bob")
    boss = await new_user("boss")
    await grant_admin(stack, boss.email)
    assert (await boss.get("/api/v1/auth/me")).json()["role"] == "admin"
    assert (await ana.get("/api/v1/auth/me")).json()["role"] == "user"

    # the free tier's defaults, from the ledger
    own = await ana.get(BUDGET)
    assert own.status_code == 200, own.text
    assert (own.json()["tier"], own.json()["daily_cap_is_default"]) == ("free", True)
    default_daily = Decimal(own.json()["daily_cap_usd"])

    # a user lowers and resets their own caps, never raises them
    lowered = await ana.put(BUDGET, json={"daily_cap_usd": str(default_daily / 2)})
    assert lowered.status_code == 200, lowered.text
    assert Decimal(lowered.json()["daily_cap_usd"]) == default_daily / 2
    assert lowered.json()["daily_cap_is_default"] is False
    raised = await ana.put(BUDGET, json={"daily_cap_usd": None, "monthly_cap_usd": "100000"})
    assert raised.status_code == 403, raised.text
    reset = await ana.put(BUDGET, json={"daily_cap_usd": None})
    assert (Decimal(reset.json()["daily_cap_usd"]), reset.json()["daily_cap_is_default"]) == (
        default_daily,
        True,
    )

    # only an admin names another user
    assert (await ana.get(BUDGET, params={"user_id": bob.user_id})).status_code == 403
    assert (await boss.get(BUDGET, params={"user_id": bob.user_id})).json()["user_id"] == bob.user_id
    assert (await boss.get(BUDGET, params={"user_id": "nobody"})).status_code == 404

    # an admin sets a tiny daily cap for ana; spend past half of it raises the 50% alert
    tiny = await boss.put(BUDGET, params={"user_id": ana.user_id}, json={"daily_cap_usd": "0.02"})
    assert tiny.status_code == 200, tiny.text
    assert Decimal((await ana.get(BUDGET)).json()["daily_cap_usd"]) == Decimal("0.02")
    listening = asyncio.create_task(first_cost_alert(ana))
    usage = UsageEvent(user_id=ana.user_id, model="stub/offline", provider="stub", cost_usd=Decimal("0.012"))
    await js.publish(subjects.usage(ana.user_id), usage.to_bytes(), headers={"Nats-Msg-Id": usage.id})

    alert = await listening
    assert (alert["user_id"], alert["scope"], alert["threshold_percent"]) == (ana.user_id, "daily", 50)
    assert Decimal(alert["cap_usd"]) == Decimal("0.02")
    listed = await ana.get("/api/v1/costs/alerts")
    assert listed.status_code == 200, listed.text
    assert [(a["scope"], a["threshold_percent"]) for a in listed.json()["alerts"]] == [("daily", 50)]
    spent = (await ana.get(BUDGET)).json()
    assert Decimal(spent["daily_spent_usd"]) == Decimal("0.012")
    assert (await bob.get("/api/v1/costs/alerts")).json()["alerts"] == []
