"""Pure budget logic: reservation decisions and alert thresholds (no I/O).

A reservation is granted only if, for every cap that applies (the user's day, the user's
month, the plan), spend already in the totals + what other unaccounted reservations hold +
this call's maximum stays within the cap. The store evaluates this under a per-user lock on
one consistent snapshot, so concurrent calls can never jointly pass a cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from tripmesh_contracts.ids import stable_id

from tripmesh_cost_ledger.domain import ZERO

ALERT_THRESHOLDS = (50, 80, 100)
"""Percent of a cap at which a cost alert is raised, once per threshold per period."""
_LOWEST_THRESHOLD = min(ALERT_THRESHOLDS)


@dataclass(frozen=True)
class Exposure:
    """What counts against one cap: settled spend and what open reservations hold."""

    spent: Decimal
    held: Decimal


@dataclass(frozen=True)
class Limits:
    daily: Decimal | None
    monthly: Decimal | None
    plan: Decimal | None


@dataclass(frozen=True)
class Decision:
    granted: bool
    reason: str | None
    remaining: Decimal | None


def plan_cap(default: Decimal | None, requested: Decimal | None) -> Decimal | None:
    """A plan's request may lower the ledger's default cap, never raise it."""
    if requested is None:
        return default
    return requested if default is None else min(default, requested)


def reserve_decision(
    amount: Decimal, limits: Limits, daily: Exposure, monthly: Exposure, plan: Exposure | None
) -> Decision:
    """Grant iff spent + held + amount <= cap for every cap that applies. A $0 call is
    granted while nothing is over (a cap already exceeded by an estimate refuses it)."""
    checks = [
        ("daily_cap_reached", limits.daily, daily),
        ("monthly_cap_reached", limits.monthly, monthly),
        ("plan_cap_reached", limits.plan if plan is not None else None, plan),
    ]
    reasons: list[str] = []
    remaining: Decimal | None = None
    for reason, cap, exposure in checks:
        if cap is None or exposure is None:
            continue
        left = cap - exposure.spent - exposure.held - amount
        if left < ZERO:
            reasons.append(reason)
        remaining = left if remaining is None else min(remaining, left)
    if reasons:
        return Decision(False, ", ".join(reasons), max(remaining or ZERO, ZERO))
    return Decision(True, None, remaining)


@dataclass(frozen=True)
class AlertCandidate:
    user_id: str
    scope: str
    """daily | monthly | plan"""
    period: str
    plan_id: str | None
    threshold_percent: int
    spent: Decimal
    cap: Decimal

    @property
    def alert_id(self) -> str:
        """Deterministic: the same crossing raised twice (two replicas, a replay) is one alert."""
        return stable_id("cost-alert", self.user_id, self.scope, self.period, str(self.threshold_percent))


def crossed(
    user_id: str, scope: str, period: str, spent: Decimal, cap: Decimal | None, plan_id: str | None = None
) -> list[AlertCandidate]:
    """Every threshold that `spent` has reached. The store inserts them with ON CONFLICT DO
    NOTHING, so a threshold already raised for the period is not raised again. A $0 cap has
    no percentages: it raises nothing (the gateway's 402 and the refusals say it all)."""
    if not reaches_a_threshold(spent, cap):
        return []
    assert cap is not None
    return [
        AlertCandidate(user_id, scope, period, plan_id, pct, spent, cap)
        for pct in ALERT_THRESHOLDS
        if spent * 100 >= cap * pct
    ]


def reaches_a_threshold(spent: Decimal, cap: Decimal | None) -> bool:
    """False for most keys of most batches: checked before building any period label."""
    return cap is not None and cap > ZERO and spent * 100 >= cap * _LOWEST_THRESHOLD


def daily_alerts(user_id: str, day: date, spent: Decimal, cap: Decimal | None) -> list[AlertCandidate]:
    if not reaches_a_threshold(spent, cap):
        return []
    return crossed(user_id, "daily", day.isoformat(), spent, cap)


def monthly_alerts(user_id: str, month: date, spent: Decimal, cap: Decimal | None) -> list[AlertCandidate]:
    """`month`: any day of it (the period is the month, e.g. 2026-11)."""
    if not reaches_a_threshold(spent, cap):
        return []
    return crossed(user_id, "monthly", month.strftime("%Y-%m"), spent, cap)
