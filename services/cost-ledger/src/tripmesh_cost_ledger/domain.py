"""Pure ledger logic: usage rows, their aggregation into running totals, periods, budgets.

The idempotency argument rests on two functions here. `unique_in_order` drops a batch's
repeated event ids (first copy wins), and `aggregate` turns the rows an insert *actually
added* into totals deltas. `aggregate` is additive over disjoint sets of rows, so adding the
delta of every batch's newly inserted rows yields the aggregate of all distinct events, in
any order, with any number of redeliveries and replays (tests/unit/test_aggregation.py
checks that property; tests/integration checks the store against it).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

from pydantic import ValidationError
from tripmesh_contracts import UsageEvent
from tripmesh_contracts.rpc import BudgetCheckReply, SummaryPeriod

MONEY_QUANTUM = Decimal("0.00000001")
"""`usage_events.cost_usd` is numeric(18, 8); amounts are rounded to it before anything adds
them, exactly as Postgres rounds on insert (half away from zero; costs are never negative)."""
ZERO = Decimal("0")


class UnsupportedTypeError(ValueError):
    """A message on `usage.llm.>` that is not a `usage.llm.v1` event."""


def decode_usage(data: bytes) -> UsageEvent:
    """Parse one message body; raises ValidationError / UnsupportedTypeError when it can't."""
    event = UsageEvent.model_validate_json(data)
    if event.type != UsageEvent.TYPE:
        raise UnsupportedTypeError(f"unsupported message type {event.type!r}")
    return event


DECODE_ERRORS = (ValidationError, UnsupportedTypeError)


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)


def as_utc(ts: datetime) -> datetime:
    """Naive timestamps are taken as UTC (the contract's default factory is aware, UTC)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class UsageRow(NamedTuple):
    """One usage event as `ledger.usage_events` stores it (field order = COLUMNS).

    A named tuple, not a dataclass: the ingest builds one per event and the binary COPY
    writes it as it is (a frozen dataclass's `__init__` plus a getattr per column showed up
    in the consumer's py-spy profile, bench/ledger/replay.py --profile-seconds)."""

    event_id: str
    user_id: str
    plan_id: str | None
    job_id: str | None
    run_id: str | None
    version: int | None
    agent: str | None
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    latency_ms: int
    attempt: int
    cache_hit: bool
    success: bool
    error: str | None
    reservation_id: str | None
    correlation_id: str | None
    estimated: bool
    occurred_at: datetime

    @classmethod
    def from_event(cls, e: UsageEvent) -> UsageRow:
        return cls(
            e.id,
            e.user_id,
            e.plan_id,
            e.job_id,
            e.run_id,
            e.version,
            e.agent.value if e.agent else None,
            e.model,
            e.provider,
            e.prompt_tokens,
            e.completion_tokens,
            money(e.cost_usd),
            e.latency_ms,
            e.attempt,
            e.cache_hit,
            e.success,
            e.error,
            e.reservation_id,
            e.correlation_id,
            e.estimated,
            as_utc(e.occurred_at),
        )

    @property
    def day(self) -> date:
        return as_utc(self.occurred_at).date()


COLUMNS: tuple[str, ...] = UsageRow._fields


def unique_in_order(rows: Iterable[UsageRow]) -> list[UsageRow]:
    """The first copy of each event id (a batch may hold a message and its redelivery)."""
    seen: set[str] = set()
    out = []
    for row in rows:
        if row.event_id not in seen:
            seen.add(row.event_id)
            out.append(row)
    return out


@dataclass
class Totals:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = ZERO

    def add(self, row: UsageRow) -> None:
        self.calls += 1
        self.prompt_tokens += row.prompt_tokens
        self.completion_tokens += row.completion_tokens
        self.cost_usd += row.cost_usd

    def merge(self, other: Totals) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd


@dataclass
class PlanTotals(Totals):
    first_at: datetime | None = None
    last_at: datetime | None = None

    def add(self, row: UsageRow) -> None:
        super().add(row)
        self._widen(row.occurred_at, row.occurred_at)

    def merge(self, other: Totals) -> None:
        super().merge(other)
        if isinstance(other, PlanTotals) and other.first_at and other.last_at:
            self._widen(other.first_at, other.last_at)

    def _widen(self, first: datetime, last: datetime) -> None:
        self.first_at = first if self.first_at is None else min(self.first_at, first)
        self.last_at = last if self.last_at is None else max(self.last_at, last)


@dataclass
class Aggregates:
    """Deltas for the running totals: per (user, UTC day) and per (user, plan)."""

    daily: dict[tuple[str, date], Totals] = field(default_factory=dict)
    plans: dict[tuple[str, str], PlanTotals] = field(default_factory=dict)

    def negated(self) -> Aggregates:
        """The deltas that take these rows back out (an estimate replaced by the real event)."""
        out = Aggregates()
        for key, t in self.daily.items():
            out.daily[key] = Totals(-t.calls, -t.prompt_tokens, -t.completion_tokens, -t.cost_usd)
        for pkey, p in self.plans.items():
            # first_at/last_at are the removed rows' own (already inside the stored span, so
            # LEAST/GREATEST leave it as it was): the span of a plan's calls only ever widens
            out.plans[pkey] = PlanTotals(
                -p.calls, -p.prompt_tokens, -p.completion_tokens, -p.cost_usd, p.first_at, p.last_at
            )
        return out

    def merge(self, other: Aggregates) -> None:
        for key, totals in other.daily.items():
            self.daily.setdefault(key, Totals()).merge(totals)
        for pkey, ptotals in other.plans.items():
            self.plans.setdefault(pkey, PlanTotals()).merge(ptotals)


def aggregate(rows: Iterable[UsageRow]) -> Aggregates:
    agg = Aggregates()
    for row in rows:
        agg.daily.setdefault((row.user_id, row.day), Totals()).add(row)
        if row.plan_id is not None:
            agg.plans.setdefault((row.user_id, row.plan_id), PlanTotals()).add(row)
    return agg


# --- periods -------------------------------------------------------------------------------


def period_range(
    period: SummaryPeriod, start: date | None, end: date | None, today: date
) -> tuple[date | None, date | None]:
    """Inclusive UTC-day bounds (None = open). `day` / `month` are the day / month of `start`
    when given, else of today; `custom` is [start, end] with either side open."""
    if period is SummaryPeriod.ALL:
        return None, None
    if period is SummaryPeriod.DAY:
        day = start or today
        return day, day
    if period is SummaryPeriod.MONTH:
        return month_bounds(start or today)
    if start is not None and end is not None and start > end:
        raise ValueError("start must not be after end")
    return start, end


# --- budgets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caps:
    daily_usd: Decimal | None
    monthly_usd: Decimal | None


def effective_caps(tier: str, tier_caps: dict[str, Caps], override: Caps | None) -> Caps:
    """A user's own cap wins where set; otherwise the tier's (unknown tier -> free)."""
    base = tier_caps.get(tier.lower()) or tier_caps["free"]
    if override is None:
        return base
    return Caps(
        override.daily_usd if override.daily_usd is not None else base.daily_usd,
        override.monthly_usd if override.monthly_usd is not None else base.monthly_usd,
    )


def budget_decision(daily_spent: Decimal, monthly_spent: Decimal, caps: Caps) -> BudgetCheckReply:
    """Not allowed once spend has *reached* a cap (a $0 cap blocks everything)."""
    reasons: Sequence[str] = [
        reason
        for reason, spent, cap in (
            ("daily_cap_reached", daily_spent, caps.daily_usd),
            ("monthly_cap_reached", monthly_spent, caps.monthly_usd),
        )
        if cap is not None and spent >= cap
    ]
    return BudgetCheckReply(
        allowed=not reasons,
        reason=", ".join(reasons) or None,
        daily_spent_usd=daily_spent,
        daily_cap_usd=caps.daily_usd,
        monthly_spent_usd=monthly_spent,
        monthly_cap_usd=caps.monthly_usd,
    )


def month_bounds(day: date) -> tuple[date, date]:
    last = calendar.monthrange(day.year, day.month)[1]
    return day.replace(day=1), day.replace(day=last)
