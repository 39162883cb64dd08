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
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, sql

from tripmesh_cost_ledger.budgeting import AlertCandidate, crossed, user_alerts
from tripmesh_cost_ledger.domain import COLUMNS, Aggregates, Caps, UsageRow, effective_caps

SCHEMA = "ledger"


def table(name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


_MARK_ACCOUNTED = sql.SQL(
    "UPDATE {} SET accounted_at = COALESCE(accounted_at, now())"
    " WHERE reservation_id = ANY(%s) RETURNING reservation_id, state"
).format(table("reservations"))
_DELETE_REPLACED_ESTIMATES = sql.SQL(
    "DELETE FROM {t} e WHERE e.estimated AND e.reservation_id = ANY(%s)"
    " AND EXISTS (SELECT 1 FROM {t} r WHERE r.reservation_id = e.reservation_id AND NOT r.estimated)"
    " RETURNING {cols}"
).format(t=table("usage_events"), cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))


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


_USER_SPEND = sql.SQL(
    "SELECT k.user_id, k.day, COALESCE(d.cost_usd, 0),"
    " (SELECT COALESCE(sum(m.cost_usd), 0) FROM {daily} m WHERE m.user_id = k.user_id"
    "  AND m.day >= date_trunc('month', k.day)::date"
    "  AND m.day < (date_trunc('month', k.day) + interval '1 month')::date),"
    " b.tier, b.daily_cap_usd, b.monthly_cap_usd"
    " FROM unnest(%s::text[], %s::date[]) AS k(user_id, day)"
    " LEFT JOIN {daily} d ON d.user_id = k.user_id AND d.day = k.day"
    " LEFT JOIN {budgets} b ON b.user_id = k.user_id"
).format(daily=table("user_daily_totals"), budgets=table("budgets"))
_PLAN_SPEND = sql.SQL(
    "SELECT p.user_id, p.plan_id, p.cost_usd, c.cap_usd"
    " FROM unnest(%s::text[], %s::text[]) AS k(user_id, plan_id)"
    " JOIN {plans} p ON p.user_id = k.user_id AND p.plan_id = k.plan_id"
    " LEFT JOIN {caps} c ON c.user_id = k.user_id AND c.plan_id = k.plan_id"
).format(plans=table("plan_totals"), caps=table("plan_caps"))
_INSERT_ALERTS = sql.SQL(
    "INSERT INTO {} (alert_id, user_id, scope, period, plan_id, threshold_percent, spent_usd, cap_usd)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int[],"
    " %s::numeric[], %s::numeric[]) ON CONFLICT DO NOTHING RETURNING alert_id"
).format(table("alerts"))


async def raise_alerts(
    conn: AsyncConnection[Any],
    delta: Aggregates,
    tier_caps: dict[str, Caps],
    plan_cap_default: Decimal | None,
) -> list[AlertCandidate]:
    """Thresholds crossed by the spend this transaction added; only the ones not raised
    before for their period come back (to be published once the transaction commits)."""
    candidates: list[AlertCandidate] = []
    days = sorted(k for k, t in delta.daily.items() if t.cost_usd > 0)
    if days:
        cur = await conn.execute(_USER_SPEND, ([u for u, _ in days], [d for _, d in days]))
        for user_id, day, daily, monthly, tier, daily_cap, monthly_cap in await cur.fetchall():
            caps = effective_caps(tier or "free", tier_caps, Caps(daily_cap, monthly_cap))
            candidates += user_alerts(user_id, day, Decimal(daily), Decimal(monthly), caps)
    plans = sorted(k for k, t in delta.plans.items() if t.cost_usd > 0)
    if plans:
        cur = await conn.execute(_PLAN_SPEND, ([u for u, _ in plans], [p for _, p in plans]))
        for user_id, plan_id, spent, cap in await cur.fetchall():
            cap = Decimal(cap) if cap is not None else plan_cap_default
            candidates += crossed(user_id, "plan", plan_id, Decimal(spent), cap, plan_id)
    if not candidates:
        return []
    cur = await conn.execute(
        _INSERT_ALERTS,
        [
            [c.alert_id for c in candidates],
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
    return [c for c in candidates if c.alert_id in new]
