"""What an ingest transaction does besides inserting rows: settle reservations against the
rows it added, replace estimates, and raise cost alerts. Each function runs inside the
ingest's transaction (`LedgerStore.ingest`), so all of it commits - or not - with the rows.

Estimates: a reservation that was never settled is charged by the ledger itself with an
`estimated` usage event (`sweeper.py`). The real usage event of that call, whenever it
arrives, replaces it: the estimate row is deleted and its amounts taken back out of the
totals, in the transaction that inserts the real one. An estimate arriving *after* the real
event is inserted and deleted in the same transaction (nets to nothing). Two ledger replicas
ingesting the estimate and the real event at once are serialized by the reservation's row
lock (the UPDATE below), so the second always sees the first's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, sql

from tripmesh_cost_ledger.budgeting import AlertCandidate, crossed, daily_alerts, monthly_alerts
from tripmesh_cost_ledger.domain import COLUMNS, Aggregates, Caps, UsageRow, effective_caps

SCHEMA = "ledger"


def table(name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def column_list(names: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


_MARK_ACCOUNTED = sql.SQL(
    "UPDATE {} SET accounted_at = COALESCE(accounted_at, now())"
    " WHERE reservation_id = ANY(%s) RETURNING reservation_id, state"
).format(table("reservations"))
_DELETE_REPLACED_ESTIMATES = sql.SQL(
    "DELETE FROM {t} e WHERE e.estimated AND e.reservation_id = ANY(%s)"
    " AND EXISTS (SELECT 1 FROM {t} r WHERE r.reservation_id = e.reservation_id AND NOT r.estimated)"
    " RETURNING {cols}"
).format(t=table("usage_events"), cols=column_list(COLUMNS))


async def account_reservations(conn: AsyncConnection[Any], inserted: Sequence[UsageRow]) -> list[UsageRow]:
    """Mark the reservations of the inserted rows accounted (their cost is in the totals from
    this commit on); delete estimates a real event now replaces. Returns the deleted rows."""
    ids = sorted({r.reservation_id for r in inserted if r.reservation_id})
    if not ids:
        return []
    cur = await conn.execute(_MARK_ACCOUNTED, (ids,))
    expired = [rid for rid, state in await cur.fetchall() if state == "expired"]
    if not expired and not any(r.estimated for r in inserted):
        return []
    cur = await conn.execute(_DELETE_REPLACED_ESTIMATES, (ids,))
    return [UsageRow(*values) for values in await cur.fetchall()]


@dataclass
class RunningTotals:
    """New running costs, after a batch, of the keys it added spend to."""

    daily: dict[tuple[str, date], Decimal] = field(default_factory=dict)
    monthly: dict[tuple[str, date], Decimal] = field(default_factory=dict)
    """Keyed by (user, first day of the month)."""
    plans: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def update_from(self, later: RunningTotals) -> None:
        """Take the later value of every key both hold (a correction in the same transaction)."""
        for mine, theirs in ((self.daily, later.daily), (self.monthly, later.monthly)):
            mine.update((k, v) for k, v in theirs.items() if k in mine)
        self.plans.update((k, v) for k, v in later.plans.items() if k in self.plans)


def monthly(agg: Aggregates) -> dict[tuple[str, date], tuple[int, Decimal]]:
    """(calls, cost) deltas per (user, month) from the daily deltas."""
    out: dict[tuple[str, date], tuple[int, Decimal]] = {}
    for (user, day), t in agg.daily.items():
        key = (user, day.replace(day=1))
        calls, cost = out.get(key, (0, Decimal(0)))
        out[key] = (calls + t.calls, cost + t.cost_usd)
    return out


_BUDGETS = sql.SQL(
    "SELECT user_id, tier, daily_cap_usd, monthly_cap_usd FROM {} WHERE user_id = ANY(%b)"
).format(table("budgets"))
_PLAN_CAPS = sql.SQL(
    "SELECT c.user_id, c.plan_id, c.cap_usd FROM unnest(%b::text[], %b::text[]) AS k(user_id, plan_id)"
    " JOIN {} c ON c.user_id = k.user_id AND c.plan_id = k.plan_id"
).format(table("plan_caps"))
_INSERT_ALERTS = sql.SQL(
    "INSERT INTO {} (alert_id, user_id, scope, period, plan_id, threshold_percent, spent_usd, cap_usd)"
    " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::int[],"
    " %b::numeric[], %b::numeric[]) ON CONFLICT DO NOTHING RETURNING alert_id"
).format(table("alerts"))


async def raise_alerts(
    conn: AsyncConnection[Any],
    totals: RunningTotals,
    tier_caps: dict[str, Caps],
    plan_cap_default: Decimal | None,
    known: RaisedAlerts | None = None,
    offered: list[str] | None = None,
) -> list[AlertCandidate]:
    """Thresholds the spend this transaction added has reached (the running totals come back
    from the upserts: no re-summing); only the ones not raised before for their period come
    back, to be published once the transaction commits.

    `known`: alert ids this process has seen stored; they are not offered again (a key over a
    threshold would otherwise re-offer it on every batch, for `ON CONFLICT DO NOTHING` to drop).
    The ids offered are appended to `offered`: the caller adds them to `known` once its
    transaction has committed (not before: a rollback would leave ids known but not stored)."""
    users = sorted({u for u, _ in totals.daily} | {u for u, _ in totals.monthly})
    caps: dict[str, Caps] = {}
    if users:
        cur = await conn.execute(_BUDGETS, (users,))
        own = {u: (tier, Caps(d, m)) for u, tier, d, m in await cur.fetchall()}
        for user in users:
            tier, override = own.get(user, ("free", None))
            caps[user] = effective_caps(tier or "free", tier_caps, override)
    candidates: list[AlertCandidate] = []
    for (user, day), spent in totals.daily.items():
        candidates += daily_alerts(user, day, Decimal(spent), caps[user].daily_usd)
    for (user, month), spent in totals.monthly.items():
        candidates += monthly_alerts(user, month, Decimal(spent), caps[user].monthly_usd)
    if totals.plans:
        keys = sorted(totals.plans)
        cur = await conn.execute(_PLAN_CAPS, ([u for u, _ in keys], [p for _, p in keys]))
        plan_caps = {(u, p): Decimal(c) for u, p, c in await cur.fetchall()}
        for (user, plan), spent in totals.plans.items():
            cap = plan_caps.get((user, plan), plan_cap_default)
            candidates += crossed(user, "plan", plan, Decimal(spent), cap, plan)
    ids = [c.alert_id for c in candidates]
    if known is not None:
        fresh = [(i, c) for i, c in zip(ids, candidates, strict=True) if i not in known]
        ids, candidates = [i for i, _ in fresh], [c for _, c in fresh]
    if offered is not None:
        offered.extend(ids)
    if not candidates:
        return []
    cur = await conn.execute(
        _INSERT_ALERTS,
        [
            ids,
            [c.user_id for c in candidates],
            [c.scope for c in candidates],
            [c.period for c in candidates],
            [c.plan_id for c in candidates],
            [c.threshold_percent for c in candidates],
            [c.spent for c in candidates],
            [c.cap for c in candidates],
        ],
    )
    new = {row[0] for row in await cur.fetchall()}
    return [c for i, c in zip(ids, candidates, strict=True) if i in new]


class RaisedAlerts:
    """Alert ids known to be stored (alerts are never deleted: a rebuild keeps them), so a
    batch need not offer them again. Bounded: forgetting is always safe (an id offered again
    is dropped by the insert's ON CONFLICT)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._stored: set[str] = set()

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._stored

    def stored(self, ids: Sequence[str]) -> None:
        """`ids` are in the database now (their transaction committed)."""
        if len(self._stored) + len(ids) > self.limit:
            self._stored.clear()
        self._stored.update(ids)
