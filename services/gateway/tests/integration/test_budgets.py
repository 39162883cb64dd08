"""Budgets and alerts through svc.ledger.budget.get / budget.set / alerts, played by a small
ledger of the test's own: roles decide who may name another user and who may raise a cap,
bodies are validated before the ledger is asked, its errors and silence become problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from tripmesh_contracts.rpc import AlertScope, AlertsReply, BudgetView, CostAlertView, RpcError
from tripmesh_gateway.admin import set_role_command
from tripmesh_gateway.store import Role

from .conftest import Responders, RunningGateway, Users

pytestmark = pytest.mark.integration

Caps = tuple[Decimal | None, Decimal | None]


def amount(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@dataclass
class FakeLedger:
    """Tier defaults and per-user caps, answering budget.get / budget.set like the ledger."""

    defaults: dict[str, Caps] = field(
        default_factory=lambda: {"free": (Decimal("1"), Decimal("10")), "pro": (Decimal("5"), Decimal("50"))}
    )
    own: dict[str, Caps] = field(default_factory=dict)

    def view(self, user_id: str, tier: str) -> BudgetView:
        daily_default, monthly_default = self.defaults[tier]
        daily, monthly = self.own.get(user_id, (None, None))
        return BudgetView(
            user_id=user_id,
            tier=tier,
            daily_cap_usd=daily_default if daily is None else daily,
            monthly_cap_usd=monthly_default if monthly is None else monthly,
            daily_cap_is_default=daily is None,
            monthly_cap_is_default=monthly is None,
            daily_spent_usd=Decimal("0.25"),
            reserved_usd=Decimal("0.01"),
            plan_cap_default_usd=Decimal("0.5"),
        )

    def get(self, request: dict[str, Any]) -> BudgetView:
        return self.view(request["user_id"], request["tier"])

    def set(self, request: dict[str, Any]) -> BudgetView:
        caps = request["caps"]
        self.own[request["user_id"]] = (amount(caps["daily_cap_usd"]), amount(caps["monthly_cap_usd"]))
        return self.view(request["user_id"], request["tier"])


@pytest.fixture
async def ledger(responders: Responders) -> FakeLedger:
    fake = FakeLedger()
    await responders.answer("svc.ledger.budget.get", fake.get)
    await responders.answer("svc.ledger.budget.set", fake.set)
    return fake


async def admin(users: Users, gateway: RunningGateway) -> tuple[dict[str, Any], dict[str, str]]:
    user, auth = await users.new()
    assert await set_role_command(gateway.settings, user["email"], Role.ADMIN) == 0
    return user, auth


def sets(responders: Responders) -> list[dict[str, Any]]:
    return responders.requests.get("svc.ledger.budget.set", [])


async def test_own_budget(
    client: httpx.AsyncClient, users: Users, ledger: FakeLedger, responders: Responders
) -> None:
    user, auth = await users.new()

    response = await client.get("/costs/budget", headers=auth)

    assert response.status_code == 200, response.text
    budget = response.json()
    assert "error" not in budget
    assert (budget["user_id"], budget["tier"], budget["daily_cap_is_default"]) == (user["id"], "free", True)
    assert Decimal(budget["daily_cap_usd"]) == 1 and Decimal(budget["daily_spent_usd"]) == Decimal("0.25")
    assert responders.requests["svc.ledger.budget.get"] == [{"user_id": user["id"], "tier": "free"}]
    # naming yourself is not naming another user
    assert (await client.get(f"/costs/budget?user_id={user['id']}", headers=auth)).status_code == 200


async def test_only_admins_name_another_user(
    client: httpx.AsyncClient, users: Users, ledger: FakeLedger, responders: Responders
) -> None:
    _, auth = await users.new()
    other, _ = await users.new()

    for method, path, body in (
        ("GET", "/costs/budget", None),
        ("PUT", "/costs/budget", {"daily_cap_usd": "0.10"}),
        ("GET", "/costs/alerts", None),
    ):
        response = await client.request(method, f"{path}?user_id={other['id']}", json=body, headers=auth)
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/forbidden")
        assert "admin" in response.json()["detail"]
    assert responders.requests == {}  # refused before the ledger was asked


async def test_admin_reads_and_sets_anyones_caps(
    client: httpx.AsyncClient,
    users: Users,
    ledger: FakeLedger,
    responders: Responders,
    gateway: RunningGateway,
) -> None:
    boss, boss_auth = await admin(users, gateway)
    other, other_auth = await users.new()
    async with gateway.app.state.runtime.store.pool.connection() as conn:
        await conn.execute(
            "UPDATE accounts.users SET subscription_tier = 'pro' WHERE id = %s", (other["id"],)
        )

    read = await client.get(f"/costs/budget?user_id={other['id']}", headers=boss_auth)
    raised = await client.put(
        f"/costs/budget?user_id={other['id']}",
        json={"daily_cap_usd": "20", "monthly_cap_usd": 300},
        headers=boss_auth,
    )
    missing = await client.get("/costs/budget?user_id=no-such-user", headers=boss_auth)
    unsafe = await client.get("/costs/budget?user_id=a.b", headers=boss_auth)

    assert read.status_code == 200, read.text
    assert (read.json()["user_id"], read.json()["tier"], Decimal(read.json()["daily_cap_usd"])) == (
        other["id"],
        "pro",
        5,
    )
    assert raised.status_code == 200, raised.text
    assert (Decimal(raised.json()["daily_cap_usd"]), raised.json()["daily_cap_is_default"]) == (20, False)
    assert sets(responders) == [
        {
            "user_id": other["id"],
            "tier": "pro",
            "caps": {"daily_cap_usd": "20", "monthly_cap_usd": "300"},
            "set_by": boss["id"],
        }
    ]
    assert (missing.status_code, unsafe.status_code) == (404, 404)
    assert missing.json()["detail"] == "user not found"
    me = (await client.get("/auth/me", headers=boss_auth)).json()
    assert me["role"] == "admin"
    assert (await client.get("/auth/me", headers=other_auth)).json()["role"] == "user"


async def test_users_lower_or_reset_their_caps_but_only_admins_raise_them(
    client: httpx.AsyncClient,
    users: Users,
    ledger: FakeLedger,
    responders: Responders,
    gateway: RunningGateway,
) -> None:
    user, auth = await users.new()
    _, boss_auth = await admin(users, gateway)

    async def put(body: dict[str, Any], headers: dict[str, str] = auth, query: str = "") -> httpx.Response:
        return await client.put(f"/costs/budget{query}", json=body, headers=headers)

    lowered = await put({"daily_cap_usd": "0.50"})  # free tier default: 1 / 10
    assert lowered.status_code == 200, lowered.text
    assert sets(responders)[-1]["caps"] == {"daily_cap_usd": "0.50", "monthly_cap_usd": None}
    assert sets(responders)[-1]["set_by"] == user["id"]

    # a raise of a custom cap cannot be checked against the default: reset first
    custom_raise = await put({"daily_cap_usd": "0.80"})
    assert custom_raise.status_code == 403
    assert custom_raise.json()["errors"][0]["field"] == "daily_cap_usd"
    assert "null" in custom_raise.json()["detail"]
    assert (await put({"daily_cap_usd": None})).status_code == 200
    assert sets(responders)[-1]["caps"] == {"daily_cap_usd": None, "monthly_cap_usd": None}
    assert (await put({"daily_cap_usd": "0.80"})).status_code == 200

    # a field left out keeps its setting (the custom daily cap is sent again as it is)
    assert (await put({"monthly_cap_usd": 4})).status_code == 200
    assert sets(responders)[-1]["caps"] == {"daily_cap_usd": "0.80", "monthly_cap_usd": "4"}

    assert (await put({"monthly_cap_usd": None})).status_code == 200
    above_default = await put({"daily_cap_usd": None, "monthly_cap_usd": "10.01"})
    assert above_default.status_code == 403
    assert above_default.json()["detail"] == (
        "raising the monthly cap above your tier's default (10 USD) needs an admin"
    )
    assert ledger.own[user["id"]] == (Decimal("0.80"), None)  # nothing changed

    # an admin's raise may be lowered by the user, not exceeded
    assert (await put({"daily_cap_usd": 8}, boss_auth, f"?user_id={user['id']}")).status_code == 200
    assert (await put({"daily_cap_usd": 3})).status_code == 200
    assert (await put({"daily_cap_usd": "3.5"})).status_code == 403
    assert (await client.get("/costs/budget", headers=auth)).json()["daily_cap_usd"] == "3"


async def test_bodies_are_validated_before_the_ledger_is_asked(
    client: httpx.AsyncClient, users: Users, ledger: FakeLedger, responders: Responders
) -> None:
    _, auth = await users.new()
    cases = [
        ({"daily_cap_usd": "-1"}, "daily_cap_usd"),
        ({"monthly_cap_usd": "lots"}, "monthly_cap_usd"),
        ({"daily_cap_usd": "0.123456"}, "daily_cap_usd"),
        ({"daily_cap_usd": "NaN"}, "daily_cap_usd"),
        ({"daily_cap": "1"}, "daily_cap"),
        ({}, "body"),
    ]
    for body, field_name in cases:
        response = await client.put("/costs/budget", json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field_name in [e["field"] for e in response.json()["errors"]], (body, response.json())
    json_headers = {**auth, "content-type": "application/json"}
    malformed = await client.put("/costs/budget", content=b"{", headers=json_headers)
    assert malformed.status_code == 422
    assert "svc.ledger.budget.set" not in responders.requests


async def test_ledger_errors_keep_their_status_and_silence_is_503(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    _, auth = await users.new()
    for path in ("/costs/budget", "/costs/alerts"):
        silent = await client.get(path, headers=auth)
        assert silent.status_code == 503, (path, silent.text)
        assert (silent.json()["service"], silent.headers["retry-after"]) == ("ledger", "2")
    assert (await client.put("/costs/budget", json={"daily_cap_usd": None}, headers=auth)).status_code == 503

    conflict = RpcError(status=409, title="Conflict", detail="caps are being rebuilt")
    await responders.answer("svc.ledger.budget.get", lambda req: BudgetView(error=conflict))
    await responders.answer("svc.ledger.alerts", lambda req: AlertsReply(error=conflict))
    for path in ("/costs/budget", "/costs/alerts"):
        response = await client.get(path, headers=auth)
        assert response.status_code == 409, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "caps are being rebuilt"


async def test_alerts_newest_first_and_only_the_callers(
    client: httpx.AsyncClient, users: Users, responders: Responders
) -> None:
    user, auth = await users.new()
    now = datetime(2027, 3, 1, 12, tzinfo=UTC)

    def alert(alert_id: str, owner: str, minutes: int, threshold: int) -> CostAlertView:
        return CostAlertView(
            id=alert_id,
            user_id=owner,
            scope=AlertScope.DAILY,
            period="2027-03-01",
            threshold_percent=threshold,
            spent_usd=Decimal("0.8"),
            cap_usd=Decimal("1"),
            raised_at=now + timedelta(minutes=minutes),
        )

    await responders.answer(
        "svc.ledger.alerts",
        lambda req: AlertsReply(
            alerts=[
                alert("a50", req["user_id"], 0, 50),
                alert("a80", req["user_id"], 5, 80),
                alert("x", "other", 9, 90),
            ]
        ),
    )

    response = await client.get("/costs/alerts?limit=7", headers=auth)
    too_many = await client.get("/costs/alerts?limit=501", headers=auth)

    assert response.status_code == 200, response.text
    assert "error" not in response.json()
    listed = [(a["id"], a["threshold_percent"]) for a in response.json()["alerts"]]
    assert listed == [("a80", 80), ("a50", 50)]
    assert responders.requests["svc.ledger.alerts"] == [{"user_id": user["id"], "limit": 7}]
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "limit"
