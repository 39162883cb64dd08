"""Pure ledger rules: decoding, money rounding, UTC days, periods, caps and budget decisions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError
from tripmesh_contracts import UsageEvent
from tripmesh_contracts.rpc import SummaryPeriod
from tripmesh_cost_ledger.domain import (
    Caps,
    UnsupportedTypeError,
    UsageRow,
    aggregate,
    budget_decision,
    decode_usage,
    effective_caps,
    money,
    period_range,
    unique_in_order,
)
from tripmesh_cost_ledger.settings import Settings

TODAY = date(2026, 2, 14)


def event(**fields: object) -> UsageEvent:
    base: dict[str, object] = {"user_id": "ana", "model": "m", "provider": "p"}
    return UsageEvent.model_validate(base | fields)


def test_decode_accepts_usage_and_rejects_anything_else() -> None:
    e = event(cost_usd="0.5")
    assert decode_usage(e.to_bytes()) == e
    with pytest.raises(ValidationError):
        decode_usage(b"{not json")
    with pytest.raises(ValidationError):
        decode_usage(b'{"user_id": "a.b", "model": "m", "provider": "p"}')  # unsafe id
    with pytest.raises(ValidationError):
        decode_usage(event().to_bytes().replace(b'"cost_usd":"0"', b'"cost_usd":"-1"'))
    with pytest.raises(UnsupportedTypeError):
        decode_usage(event(type="usage.llm.v2").to_bytes())


def test_money_rounds_to_the_columns_eight_places_half_up() -> None:
    assert money(Decimal("0.000000015")) == Decimal("0.00000002")
    assert money(Decimal("0.000000014999")) == Decimal("0.00000001")
    assert money(Decimal("3")) == Decimal("3.00000000")


def test_rows_fall_on_the_utc_day_of_occurred_at() -> None:
    late_in_lisbon_summer = datetime(2026, 7, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    row = UsageRow.from_event(event(occurred_at=late_in_lisbon_summer))
    assert row.day == date(2026, 6, 30)
    naive = UsageRow.from_event(event(occurred_at=datetime(2026, 7, 1, 0, 30)))
    assert naive.occurred_at.tzinfo is UTC and naive.day == date(2026, 7, 1)


def test_first_copy_of_an_event_wins_within_a_batch() -> None:
    a1, a2 = event(id="a", cost_usd="1"), event(id="a", cost_usd="2")
    rows = unique_in_order(UsageRow.from_event(e) for e in (a1, event(id="b"), a2))
    assert [(r.event_id, r.cost_usd) for r in rows] == [("a", Decimal(1)), ("b", Decimal(0))]


def test_aggregate_by_user_day_and_user_plan() -> None:
    t0 = datetime(2026, 2, 13, 23, 0, tzinfo=UTC)
    rows = [
        UsageRow.from_event(e)
        for e in (
            event(plan_id="p", cost_usd="0.1", prompt_tokens=1, occurred_at=t0),
            event(plan_id="p", cost_usd="0.2", completion_tokens=2, occurred_at=t0 + timedelta(hours=2)),
            event(plan_id=None, cost_usd="0.3", occurred_at=t0),
            event(user_id="bob", plan_id="p", cost_usd="1", occurred_at=t0),
        )
    ]
    agg = aggregate(rows)
    assert {k: (t.calls, t.cost_usd) for k, t in agg.daily.items()} == {
        ("ana", date(2026, 2, 13)): (2, Decimal("0.4")),
        ("ana", date(2026, 2, 14)): (1, Decimal("0.2")),
        ("bob", date(2026, 2, 13)): (1, Decimal(1)),
    }
    plan = agg.plans[("ana", "p")]
    assert (plan.calls, plan.prompt_tokens, plan.completion_tokens, plan.cost_usd) == (
        2,
        1,
        2,
        Decimal("0.3"),
    )
    assert (plan.first_at, plan.last_at) == (t0, t0 + timedelta(hours=2))
    assert set(agg.plans) == {("ana", "p"), ("bob", "p")}


@pytest.mark.parametrize(
    ("period", "start", "end", "expected"),
    [
        (SummaryPeriod.ALL, None, None, (None, None)),
        (SummaryPeriod.DAY, None, None, (TODAY, TODAY)),
        (SummaryPeriod.DAY, date(2026, 1, 3), None, (date(2026, 1, 3), date(2026, 1, 3))),
        (SummaryPeriod.MONTH, None, None, (date(2026, 2, 1), date(2026, 2, 28))),
        (SummaryPeriod.MONTH, date(2024, 2, 10), None, (date(2024, 2, 1), date(2024, 2, 29))),
        (SummaryPeriod.CUSTOM, date(2026, 1, 1), date(2026, 1, 9), (date(2026, 1, 1), date(2026, 1, 9))),
        (SummaryPeriod.CUSTOM, None, date(2026, 1, 9), (None, date(2026, 1, 9))),
    ],
)
def test_periods(
    period: SummaryPeriod, start: date | None, end: date | None, expected: tuple[date | None, date | None]
) -> None:
    assert period_range(period, start, end, TODAY) == expected


def test_a_custom_period_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="start"):
        period_range(SummaryPeriod.CUSTOM, date(2026, 1, 2), date(2026, 1, 1), TODAY)


def test_default_tier_caps_and_overrides() -> None:
    tiers = Settings(database_url="postgresql://x/y").tier_caps()
    assert tiers["free"] == Caps(Decimal(1), Decimal(10))
    assert tiers["premium"] == Caps(Decimal(10), Decimal(200))
    assert effective_caps("PREMIUM", tiers, None) == tiers["premium"]
    assert effective_caps("gold", tiers, None) == tiers["free"]
    own = Caps(daily_usd=Decimal(3), monthly_usd=None)
    assert effective_caps("basic", tiers, own) == Caps(Decimal(3), Decimal(50))


def test_tier_caps_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COST_LEDGER_DATABASE_URL", raising=False)
    monkeypatch.setenv("COST_LEDGER_FREE_DAILY_CAP_USD", "0.25")
    monkeypatch.setenv("DATABASE_URL", "postgresql://shared/db")
    s = Settings()
    assert s.tier_caps()["free"].daily_usd == Decimal("0.25")
    assert s.database_url == "postgresql://shared/db"
    monkeypatch.setenv("COST_LEDGER_DATABASE_URL", "postgresql://own/ledger")
    assert Settings().database_url == "postgresql://own/ledger"  # the service's own wins


@pytest.mark.parametrize(
    ("daily", "monthly", "allowed", "reason"),
    [
        ("0.99", "9.99", True, None),
        ("1", "5", False, "daily_cap_reached"),
        ("0.5", "10", False, "monthly_cap_reached"),
        ("2", "12", False, "daily_cap_reached, monthly_cap_reached"),
    ],
)
def test_budget_is_refused_once_a_cap_is_reached(
    daily: str, monthly: str, allowed: bool, reason: str | None
) -> None:
    reply = budget_decision(Decimal(daily), Decimal(monthly), Caps(Decimal(1), Decimal(10)))
    assert (reply.allowed, reply.reason) == (allowed, reason)
    assert (reply.daily_spent_usd, reply.monthly_spent_usd) == (Decimal(daily), Decimal(monthly))


def test_no_cap_means_no_limit_and_a_zero_cap_blocks() -> None:
    assert budget_decision(Decimal(99), Decimal(999), Caps(None, None)).allowed
    assert not budget_decision(Decimal(0), Decimal(0), Caps(Decimal(0), None)).allowed
