"""`svc.ledger.*` over real NATS request/reply, answered from the real Postgres ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from tripmesh_contracts import UsageEvent, subjects
from tripmesh_contracts.rpc import (
    BudgetCheckReply,
    BudgetCheckRequest,
    CostSummaryReply,
    CostSummaryRequest,
    PlanCostsReply,
    PlanCostsRequest,
    RpcModel,
)
from tripmesh_cost_ledger.domain import Caps

pytestmark = pytest.mark.integration

MakeUsage = Callable[..., UsageEvent]


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def keyed(buckets: list[Any]) -> dict[str, tuple[int, Decimal]]:
    return {b.key: (b.calls, b.cost_usd) for b in buckets}


@pytest.fixture
async def history(ledger: Any, make_usage: MakeUsage) -> Any:
    """Two users; ana has two plans over three days spanning a month boundary."""
    u = make_usage
    await ledger.publish(
        u(
            "ana",
            plan_id="lisbon",
            agent="location",
            model="gpt-5-mini",
            provider="openai",
            cost="0.10",
            prompt_tokens=10,
            completion_tokens=1,
            occurred_at=at("2026-03-30"),
        ),
        u(
            "ana",
            plan_id="lisbon",
            agent="planning",
            model="gpt-5",
            provider="openai",
            cost="0.25",
            prompt_tokens=20,
            completion_tokens=2,
            occurred_at=at("2026-03-31", 23),
        ),
        u(
            "ana",
            plan_id="lisbon",
            agent="planning",
            model="claude-sonnet-4-5",
            provider="anthropic",
            cost="0.30",
            prompt_tokens=30,
            completion_tokens=3,
            occurred_at=at("2026-04-01", 0),
        ),
        u(
            "ana",
            plan_id="oslo",
            agent="weather",
            model="gpt-5-mini",
            provider="openai",
            cost="0.05",
            prompt_tokens=40,
            completion_tokens=4,
            occurred_at=at("2026-04-01"),
        ),
        u(
            "ana",
            plan_id=None,
            agent=None,
            model="gpt-5-mini",
            provider="openai",
            cost="0.01",
            prompt_tokens=50,
            completion_tokens=5,
            occurred_at=at("2026-04-01"),
        ),
        u(
            "bob",
            plan_id="fjords",
            agent="planning",
            model="gpt-5",
            provider="openai",
            cost="9.99",
            occurred_at=at("2026-04-01"),
        ),
    )
    await ledger.wait_until(lambda: ledger.caught_up())
    return ledger


async def summary(ledger: Any, **fields: Any) -> CostSummaryReply:
    reply: CostSummaryReply = await ledger.ask(
        subjects.SVC_LEDGER_SUMMARY, CostSummaryRequest(**fields), CostSummaryReply
    )
    assert reply.error is None, reply.error
    return reply


async def test_summary_of_everything_by_agent_model_provider_day(history: Any) -> None:
    s = await summary(history, user_id="ana")
    assert (s.calls, s.prompt_tokens, s.completion_tokens) == (5, 150, 15)
    assert s.total_cost_usd == Decimal("0.71")
    assert keyed(s.by_agent) == {
        "planning": (2, Decimal("0.55")),
        "location": (1, Decimal("0.10")),
        "weather": (1, Decimal("0.05")),
        "unknown": (1, Decimal("0.01")),
    }
    assert [b.key for b in s.by_agent] == ["planning", "location", "weather", "unknown"]
    assert keyed(s.by_model) == {
        "claude-sonnet-4-5": (1, Decimal("0.30")),
        "gpt-5": (1, Decimal("0.25")),
        "gpt-5-mini": (3, Decimal("0.16")),
    }
    assert keyed(s.by_provider) == {"openai": (4, Decimal("0.41")), "anthropic": (1, Decimal("0.30"))}
    assert [(b.key, b.calls, b.cost_usd) for b in s.by_day] == [
        ("2026-03-30", 1, Decimal("0.10")),
        ("2026-03-31", 1, Decimal("0.25")),
        ("2026-04-01", 3, Decimal("0.36")),
    ]


async def test_summary_by_plan_and_period(history: Any) -> None:
    lisbon = await summary(history, user_id="ana", plan_id="lisbon")
    assert (lisbon.plan_id, lisbon.calls, lisbon.total_cost_usd) == ("lisbon", 3, Decimal("0.65"))
    assert {b.key for b in lisbon.by_agent} == {"location", "planning"}

    day = await summary(history, user_id="ana", period="day", start=date(2026, 3, 31))
    assert (day.calls, day.total_cost_usd) == (1, Decimal("0.25"))  # 23:00 UTC stays on the 31st

    march = await summary(history, user_id="ana", period="month", start=date(2026, 3, 5))
    assert (march.calls, march.total_cost_usd) == (2, Decimal("0.35"))

    custom = await summary(
        history,
        user_id="ana",
        plan_id="lisbon",
        period="custom",
        start=date(2026, 3, 31),
        end=date(2026, 4, 1),
    )
    assert (custom.calls, custom.total_cost_usd) == (2, Decimal("0.55"))
    assert [b.key for b in custom.by_day] == ["2026-03-31", "2026-04-01"]

    open_ended = await summary(history, user_id="ana", period="custom", start=date(2026, 4, 1))
    assert open_ended.calls == 3


async def test_summary_is_scoped_to_the_requesting_user(history: Any) -> None:
    bob = await summary(history, user_id="bob")
    assert (bob.calls, bob.total_cost_usd) == (1, Decimal("9.99"))
    # bob asking about ana's plan gets nothing of it
    stolen = await summary(history, user_id="bob", plan_id="lisbon")
    assert (stolen.calls, stolen.total_cost_usd, stolen.by_agent) == (0, Decimal(0), [])
    nobody = await summary(history, user_id="carol")
    assert nobody.calls == 0 and nobody.error is None


async def test_bad_requests_get_a_422_reply(history: Any) -> None:
    class Raw(RpcModel):
        user_id: str
        period: str = "custom"
        start: str | None = None
        end: str | None = None

    for request in (
        Raw(user_id="ana.*"),
        Raw(user_id="ana", period="fortnight"),
        Raw(user_id="ana", start="2026-04-02", end="2026-04-01"),
    ):
        reply = await history.ask(subjects.SVC_LEDGER_SUMMARY, request, CostSummaryReply)
        assert reply.error is not None and reply.error.status == 422, request


async def test_plan_costs_for_the_users_plans(history: Any) -> None:
    reply = await history.ask(
        subjects.SVC_LEDGER_PLAN_COSTS,
        PlanCostsRequest(user_id="ana", plan_ids=["lisbon", "oslo", "fjords", "unknown"]),
        PlanCostsReply,
    )
    assert reply.error is None
    assert reply.costs == {
        "lisbon": Decimal("0.65"),
        "oslo": Decimal("0.05"),
        "fjords": Decimal(0),
        "unknown": Decimal(0),
    }  # fjords is bob's


async def budget(ledger: Any, user_id: str, tier: str = "free") -> BudgetCheckReply:
    reply: BudgetCheckReply = await ledger.ask(
        subjects.SVC_LEDGER_BUDGET_CHECK, BudgetCheckRequest(user_id=user_id, tier=tier), BudgetCheckReply
    )
    assert reply.error is None, reply.error
    return reply


def _spent(ledger: Any, user: str, amount: Decimal) -> Any:
    async def reached() -> bool:
        return (await budget(ledger, user)).daily_spent_usd == amount

    return reached


async def test_budget_check_against_tier_caps(ledger: Any, make_usage: MakeUsage) -> None:
    fresh = await budget(ledger, "dora")
    assert fresh.allowed and fresh.daily_spent_usd == 0
    assert (fresh.daily_cap_usd, fresh.monthly_cap_usd) == (Decimal(1), Decimal(10))

    await ledger.publish(make_usage("dora", cost="0.60"))
    # consumer counters can read "caught up" a moment before the new message is counted:
    # wait for the ingested amount itself (a liveness bound, not a speed assertion)
    await ledger.wait_until(_spent(ledger, "dora", Decimal("0.6")))
    below = await budget(ledger, "dora")
    assert below.allowed and below.daily_spent_usd == Decimal("0.6")

    await ledger.publish(make_usage("dora", cost="0.40"))  # exactly the $1 free daily cap
    await ledger.wait_until(_spent(ledger, "dora", Decimal(1)))
    reached = await budget(ledger, "dora")
    assert not reached.allowed and reached.reason == "daily_cap_reached"
    assert reached.daily_spent_usd == reached.monthly_spent_usd == Decimal(1)

    premium = await budget(ledger, "dora", tier="premium")
    assert premium.allowed and premium.daily_cap_usd == Decimal(10)
    typo = await budget(ledger, "dora", tier="platinum")  # unknown tier: free caps
    assert not typo.allowed and typo.daily_cap_usd == Decimal(1)


async def test_budget_check_with_a_users_own_caps(ledger: Any, make_usage: MakeUsage) -> None:
    await ledger.store.set_budget("erin", Caps(daily_usd=Decimal(100), monthly_usd=Decimal("0.5")))
    await ledger.publish(make_usage("erin", cost="0.50"))
    await ledger.wait_until(lambda: ledger.caught_up())
    reply = await budget(ledger, "erin", tier="premium")
    assert not reply.allowed and reply.reason == "monthly_cap_reached"
    assert (reply.daily_cap_usd, reply.monthly_cap_usd) == (Decimal(100), Decimal("0.5"))

    await ledger.store.set_budget("erin", Caps(daily_usd=None, monthly_usd=None))
    assert (await budget(ledger, "erin", tier="premium")).allowed  # back to premium's caps
