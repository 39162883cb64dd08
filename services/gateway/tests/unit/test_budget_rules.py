"""Who may set which cap: a user only lowers (or resets) their own; raising needs an admin."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from tripmesh_contracts.rpc import BudgetView
from tripmesh_gateway.api.deps import current_admin
from tripmesh_gateway.api.errors import ApiProblem
from tripmesh_gateway.budget_rules import self_service_refusals
from tripmesh_gateway.domain import FieldError
from tripmesh_gateway.store import Role, UserRecord

D = Decimal


def view(daily: str | None = "1", monthly: str | None = "10", *, custom_daily: bool = False) -> BudgetView:
    return BudgetView(
        daily_cap_usd=None if daily is None else D(daily),
        monthly_cap_usd=None if monthly is None else D(monthly),
        daily_cap_is_default=not custom_daily,
    )


def fields(refusals: list[FieldError]) -> list[str]:
    return [r.field for r in refusals]


def test_lowering_and_resetting_are_always_allowed() -> None:
    assert self_service_refusals(view(), {"daily_cap_usd": D("0.5"), "monthly_cap_usd": D("10")}) == []
    assert self_service_refusals(view(), {"daily_cap_usd": D("0")}) == []
    assert self_service_refusals(view(custom_daily=True), {"daily_cap_usd": None}) == []
    # an admin's raise (a custom cap above the default) may be lowered, not exceeded
    assert self_service_refusals(view("8", custom_daily=True), {"daily_cap_usd": D("3")}) == []


def test_a_tier_without_a_cap_lets_users_set_any() -> None:
    assert self_service_refusals(view(None, None), {"daily_cap_usd": D("1000")}) == []


def test_raising_above_the_default_is_refused_with_the_default_named() -> None:
    changes = {"daily_cap_usd": D("2"), "monthly_cap_usd": D("9")}
    refusals = self_service_refusals(view(daily="1.50000000"), changes)
    assert fields(refusals) == ["daily_cap_usd"]
    assert refusals[0].message == "raising the daily cap above your tier's default (1.5 USD) needs an admin"


def test_raising_a_custom_cap_says_how_to_get_back_to_the_default() -> None:
    refusals = self_service_refusals(view("0.5", custom_daily=True), {"daily_cap_usd": D("0.6")})
    assert fields(refusals) == ["daily_cap_usd"]
    assert "send null" in refusals[0].message


def user(role: Role) -> UserRecord:
    now = datetime.now(UTC)
    return UserRecord("u1", "a@b.example", "ab", "x", "free", True, now, None, role)


async def test_current_admin_dependency() -> None:
    assert (await current_admin(user(Role.ADMIN))).is_admin
    with pytest.raises(ApiProblem) as refused:
        await current_admin(user(Role.USER))
    assert (refused.value.status, refused.value.kind) == (403, "forbidden")
