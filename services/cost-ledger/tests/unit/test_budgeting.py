"""Reservation decisions and alert thresholds (pure)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tripmesh_cost_ledger.budgeting import (
    AlertCandidate,
    Exposure,
    Limits,
    crossed,
    daily_alerts,
    monthly_alerts,
    plan_cap,
    reserve_decision,
)
from tripmesh_cost_ledger.domain import Caps

D = Decimal
NONE = Exposure(D(0), D(0))


def test_a_call_is_granted_only_if_it_fits_every_cap() -> None:
    limits = Limits(daily=D("1"), monthly=D("10"), plan=D("0.5"))
    fits = reserve_decision(
        D("0.2"), limits, Exposure(D("0.5"), D("0.2")), NONE, Exposure(D("0.1"), D("0.1"))
    )
    assert fits.granted and fits.remaining == D("0.1")  # the daily cap is the tightest
    over = reserve_decision(D("0.31"), limits, Exposure(D("0.5"), D("0.2")), NONE, Exposure(D("0"), D("0")))
    assert not over.granted and over.reason == "daily_cap_reached" and over.remaining == D(0)
    both = reserve_decision(D("0.6"), limits, NONE, NONE, NONE)
    assert both.reason == "plan_cap_reached"
    exact = reserve_decision(D("1"), Limits(D("1"), None, None), NONE, NONE, None)
    assert exact.granted and exact.remaining == D(0)


def test_no_caps_grants_and_a_zero_cap_refuses_anything_but_free_calls() -> None:
    assert reserve_decision(D("99"), Limits(None, None, None), NONE, NONE, None).remaining is None
    zero = Limits(D(0), None, None)
    assert not reserve_decision(D("0.00000001"), zero, NONE, NONE, None).granted
    assert reserve_decision(D(0), zero, NONE, NONE, None).granted


def test_a_plan_may_lower_the_default_cap_never_raise_it() -> None:
    assert plan_cap(D("1"), None) == D("1")
    assert plan_cap(D("1"), D("0.2")) == D("0.2")
    assert plan_cap(D("1"), D("5")) == D("1")
    assert plan_cap(None, D("5")) == D("5")


@given(
    cap=st.decimals(min_value=D("0.01"), max_value=D(100), places=2),
    amounts=st.lists(st.decimals(min_value=D(0), max_value=D(5), places=4), max_size=60),
)
def test_sequential_grants_never_sum_past_the_cap(cap: Decimal, amounts: list[Decimal]) -> None:
    held = D(0)
    for amount in amounts:
        if reserve_decision(amount, Limits(cap, None, None), Exposure(D(0), held), NONE, None).granted:
            held += amount
    assert held <= cap


@pytest.mark.parametrize(
    ("spent", "raised"), [("0.49", []), ("0.5", [50]), ("0.8", [50, 80]), ("1.7", [50, 80, 100])]
)
def test_thresholds_reached(spent: str, raised: list[int]) -> None:
    alerts = crossed("u", "plan", "p1", D(spent), D("1"), "p1")
    assert [a.threshold_percent for a in alerts] == raised
    assert len({a.alert_id for a in alerts}) == len(raised)


def user_alerts(
    user_id: str, day: date, daily: Decimal, monthly: Decimal, caps: Caps
) -> list[AlertCandidate]:
    return daily_alerts(user_id, day, daily, caps.daily_usd) + monthly_alerts(
        user_id, day, monthly, caps.monthly_usd
    )


def test_alert_ids_are_per_user_scope_period_and_threshold() -> None:
    today = user_alerts("u", date(2026, 11, 23), D("1"), D("1"), Caps(D("1"), D("2")))
    assert [(a.scope, a.period, a.threshold_percent) for a in today] == [
        ("daily", "2026-11-23", 50), ("daily", "2026-11-23", 80), ("daily", "2026-11-23", 100),
        ("monthly", "2026-11", 50),
    ]  # fmt: skip
    again = user_alerts("u", date(2026, 11, 23), D("1.5"), D("1.5"), Caps(D("1"), D("2")))
    assert {a.alert_id for a in today} <= {a.alert_id for a in again}
    tomorrow = user_alerts("u", date(2026, 11, 24), D("1"), D("1"), Caps(D("1"), None))
    assert not {a.alert_id for a in today} & {a.alert_id for a in tomorrow}
    assert crossed("u", "daily", "d", D("5"), D(0)) == []
    assert crossed("u", "daily", "d", D("5"), None) == []


def test_raised_alerts_remembers_stored_ids_and_forgets_when_full() -> None:
    from tripmesh_cost_ledger.accounting import RaisedAlerts

    raised = RaisedAlerts(limit=3)
    raised.stored(["a", "b"])
    assert "a" in raised and "b" in raised and "c" not in raised
    raised.stored(["c", "d"])  # over the limit: start again (an id offered twice is harmless)
    assert "a" not in raised and "c" in raised and "d" in raised
