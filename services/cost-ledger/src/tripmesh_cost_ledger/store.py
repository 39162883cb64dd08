"""The ledger's Postgres adapter (schema `ledger`).

Idempotent ingest (`writes.write_batch`): one transaction inserts a batch with `ON CONFLICT
(event_id) DO NOTHING RETURNING ...`; only the returned rows (the ones this insert added) are
aggregated into the running totals, in the same statement. A redelivered or replayed event returns no row and
so changes nothing; a commit whose acknowledgement was lost (connection dropped after
COMMIT) is retried the same way, with the same result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from tripmesh_cost_ledger.accounting import SCHEMA as SCHEMA
from tripmesh_cost_ledger.accounting import (
    RaisedAlerts,
    RunningTotals,
    account_reservations,
    monthly,
    raise_alerts,
    table,
)
from tripmesh_cost_ledger.budgeting import AlertCandidate
from tripmesh_cost_ledger.domain import (
    ZERO,
    Aggregates,
    Caps,
    Totals,
    UsageRow,
    aggregate,
    unique_in_order,
)
from tripmesh_cost_ledger.writes import write_batch

DERIVED_TABLES = ("usage_events", "user_daily_totals", "user_monthly_totals", "plan_totals")
"""Everything a replay of the USAGE stream rebuilds (budgets are configuration: kept)."""

_LOCK_CONFLICTS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


_table = table


# Keys are sorted so concurrent replicas take row locks in the same order (no deadlocks).
_UPSERT_DAILY = sql.SQL(
    "INSERT INTO {table} AS t (user_id, day, calls, prompt_tokens, completion_tokens, cost_usd)"
    " SELECT * FROM unnest(%b::text[], %b::date[], %b::bigint[], %b::bigint[], %b::bigint[],"
    " %b::numeric[]) ORDER BY 1, 2"
    " ON CONFLICT (user_id, day) DO UPDATE SET calls = t.calls + EXCLUDED.calls,"
    " prompt_tokens = t.prompt_tokens + EXCLUDED.prompt_tokens,"
    " completion_tokens = t.completion_tokens + EXCLUDED.completion_tokens,"
    " cost_usd = t.cost_usd + EXCLUDED.cost_usd, updated_at = now()"
    " RETURNING user_id, day, cost_usd"
).format(table=_table("user_daily_totals"))
_UPSERT_MONTHLY = sql.SQL(
    "INSERT INTO {table} AS t (user_id, month, calls, cost_usd)"
    " SELECT * FROM unnest(%b::text[], %b::date[], %b::bigint[], %b::numeric[]) ORDER BY 1, 2"
    " ON CONFLICT (user_id, month) DO UPDATE SET calls = t.calls + EXCLUDED.calls,"
    " cost_usd = t.cost_usd + EXCLUDED.cost_usd, updated_at = now()"
    " RETURNING user_id, month, cost_usd"
).format(table=_table("user_monthly_totals"))
_UPSERT_PLANS = sql.SQL(
    "INSERT INTO {table} AS t (user_id, plan_id, calls, prompt_tokens, completion_tokens,"
    " cost_usd, first_at, last_at)"
    " SELECT * FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::bigint[],"
    " %b::numeric[], %b::timestamptz[], %b::timestamptz[]) ORDER BY 1, 2"
    " ON CONFLICT (user_id, plan_id) DO UPDATE SET calls = t.calls + EXCLUDED.calls,"
    " prompt_tokens = t.prompt_tokens + EXCLUDED.prompt_tokens,"
    " completion_tokens = t.completion_tokens + EXCLUDED.completion_tokens,"
    " cost_usd = t.cost_usd + EXCLUDED.cost_usd,"
    " first_at = LEAST(t.first_at, EXCLUDED.first_at),"
    " last_at = GREATEST(t.last_at, EXCLUDED.last_at), updated_at = now()"
    " RETURNING user_id, plan_id, cost_usd"
).format(table=_table("plan_totals"))


@dataclass(frozen=True)
class IngestResult:
    inserted: list[UsageRow]
    duplicates: int
    replaced_estimates: list[UsageRow] = field(default_factory=list)
    alerts: list[AlertCandidate] = field(default_factory=list)
    """Raised by this batch (committed, not yet published)."""


@dataclass(frozen=True)
class SummaryRow:
    dimension: str
    """total | agent | model | provider | day"""
    key: str
    totals: Totals


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class LedgerStore:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        ingest_timeout: float = 5.0,
        query_timeout: float = 3.0,
        tier_caps: dict[str, Caps] | None = None,
        plan_cap_default: Decimal | None = None,
    ) -> None:
        self.pool = pool
        self.ingest_timeout = ingest_timeout
        self.query_timeout = query_timeout
        self.tier_caps = tier_caps
        """None: no alerts are raised (tools that only replay history)."""
        self.plan_cap_default = plan_cap_default
        self.raised = RaisedAlerts()
        """Alert ids this process knows are stored: not offered again by later batches."""

    # --- writes -----------------------------------------------------------------------------

    async def ingest(self, rows: Sequence[UsageRow]) -> IngestResult:
        """Insert a batch in one transaction; totals grow by exactly the rows it added.

        Raises psycopg errors: an outage (`tripmesh_kit.pg.is_store_outage`) means nothing was
        committed, or it was and a retry will find every row already present."""
        unique = unique_in_order(rows)
        for attempt in range(5):
            offered: list[str] = []
            try:
                async with self.pool.connection(timeout=self.ingest_timeout) as conn, conn.transaction():
                    inserted, totals = await write_batch(conn, unique)
                    replaced = await account_reservations(conn, inserted)
                    if replaced:  # rare: estimates a real event replaces come back out
                        corrected = await self._add_totals(conn, aggregate(replaced).negated())
                        totals.update_from(corrected)
                    alerts = []
                    if self.tier_caps is not None:
                        alerts = await raise_alerts(
                            conn, totals, self.tier_caps, self.plan_cap_default, self.raised, offered
                        )
                self.raised.stored(offered)  # committed
                return IngestResult(inserted, len(rows) - len(inserted), replaced, alerts)
            except _LOCK_CONFLICTS:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _add_totals(self, conn: AsyncConnection[Any], agg: Aggregates) -> RunningTotals:
        """Add the deltas (in the ingest: the negated totals of replaced estimates); returns the
        new running totals of every key they touched."""
        new = RunningTotals()
        if agg.daily:
            keys = sorted(agg.daily)
            daily = [agg.daily[k] for k in keys]
            cur = await conn.execute(
                _UPSERT_DAILY,
                [
                    [u for u, _ in keys],
                    [d for _, d in keys],
                    [t.calls for t in daily],
                    [t.prompt_tokens for t in daily],
                    [t.completion_tokens for t in daily],
                    [t.cost_usd for t in daily],
                ],
            )
            new.daily = {(u, d): c for u, d, c in await cur.fetchall()}
            months = monthly(agg)
            mkeys = sorted(months)
            cur = await conn.execute(
                _UPSERT_MONTHLY,
                [
                    [u for u, _ in mkeys],
                    [m for _, m in mkeys],
                    [months[k][0] for k in mkeys],
                    [months[k][1] for k in mkeys],
                ],
            )
            new.monthly = {(u, m): c for u, m, c in await cur.fetchall()}
        if agg.plans:
            pkeys = sorted(agg.plans)
            plans = [agg.plans[k] for k in pkeys]
            cur = await conn.execute(
                _UPSERT_PLANS,
                [
                    [u for u, _ in pkeys],
                    [p for _, p in pkeys],
                    [t.calls for t in plans],
                    [t.prompt_tokens for t in plans],
                    [t.completion_tokens for t in plans],
                    [t.cost_usd for t in plans],
                    [t.first_at for t in plans],
                    [t.last_at for t in plans],
                ],
            )
            new.plans = {(u, p): c for u, p, c in await cur.fetchall()}
        return new

    async def set_budget(self, user_id: str, caps: Caps) -> None:
        async with self.pool.connection(timeout=self.query_timeout) as conn:
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (user_id, daily_cap_usd, monthly_cap_usd) VALUES (%s, %s, %s)"
                    " ON CONFLICT (user_id) DO UPDATE SET daily_cap_usd = EXCLUDED.daily_cap_usd,"
                    " monthly_cap_usd = EXCLUDED.monthly_cap_usd, updated_at = now()"
                ).format(_table("budgets")),
                (user_id, caps.daily_usd, caps.monthly_usd),
            )

    async def truncate_derived(self) -> None:
        """Empty the tables a replay rebuilds (an operator's `rebuild`)."""
        async with self.pool.connection(timeout=self.query_timeout) as conn:
            await conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(_table, DERIVED_TABLES))))

    # --- reads ------------------------------------------------------------------------------

    async def count_events(self) -> int:
        async with self.pool.connection(timeout=self.query_timeout) as conn:
            cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_table("usage_events")))
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def summary(
        self, user_id: str, plan_id: str | None, first_day: date | None, last_day: date | None
    ) -> list[SummaryRow]:
        """Totals and buckets by agent / model / provider / UTC day, for one user."""
        where = [sql.SQL("user_id = %(user)s")]
        if plan_id is not None:
            where.append(sql.SQL("plan_id = %(plan)s"))
        if first_day is not None:
            where.append(sql.SQL("occurred_at >= %(since)s"))
        if last_day is not None:
            where.append(sql.SQL("occurred_at < %(until)s"))
        query = sql.SQL(
            "SELECT CASE WHEN GROUPING(agent_key) = 0 THEN 'agent'"
            " WHEN GROUPING(model) = 0 THEN 'model' WHEN GROUPING(provider) = 0 THEN 'provider'"
            " WHEN GROUPING(day) = 0 THEN 'day' ELSE 'total' END,"
            " COALESCE(agent_key, model, provider, day::text, ''), count(*),"
            " COALESCE(sum(prompt_tokens), 0), COALESCE(sum(completion_tokens), 0),"
            " COALESCE(sum(cost_usd), 0)"
            " FROM (SELECT COALESCE(agent, 'unknown') AS agent_key, model, provider,"
            " (occurred_at AT TIME ZONE 'UTC')::date AS day, prompt_tokens, completion_tokens,"
            " cost_usd FROM {table} WHERE {where}) e"
            " GROUP BY GROUPING SETS ((), (agent_key), (model), (provider), (day))"
        ).format(table=_table("usage_events"), where=sql.SQL(" AND ").join(where))
        params = {
            "user": user_id,
            "plan": plan_id,
            "since": day_start(first_day) if first_day else None,
            "until": day_start(last_day + timedelta(days=1)) if last_day else None,
        }
        async with self.pool.connection(timeout=self.query_timeout) as conn:
            cur = await conn.execute(query, params)
            rows = await cur.fetchall()
        return [
            SummaryRow(dim, key, Totals(int(n), int(pt), int(ct), Decimal(cost)))
            for dim, key, n, pt, ct, cost in rows
        ]

    async def plan_costs(self, user_id: str, plan_ids: Sequence[str]) -> dict[str, Decimal]:
        async with self.pool.connection(timeout=self.query_timeout) as conn:
            cur = await conn.execute(
                sql.SQL("SELECT plan_id, cost_usd FROM {} WHERE user_id = %s AND plan_id = ANY(%s)").format(
                    _table("plan_totals")
                ),
                (user_id, list(plan_ids)),
            )
            return {plan_id: Decimal(cost) for plan_id, cost in await cur.fetchall()}

    async def spend(
        self, user_id: str, day: date, month_first: date, month_last: date
    ) -> tuple[Decimal, Decimal]:
        """(spent on `day`, spent in the month) from the running daily totals."""
        async with self.pool.connection(timeout=self.query_timeout) as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT COALESCE(sum(cost_usd) FILTER (WHERE day = %s), 0),"
                    " COALESCE(sum(cost_usd), 0) FROM {}"
                    " WHERE user_id = %s AND day BETWEEN %s AND %s"
                ).format(_table("user_daily_totals")),
                (day, user_id, month_first, month_last),
            )
            row = await cur.fetchone()
        return (Decimal(row[0]), Decimal(row[1])) if row else (ZERO, ZERO)

    async def user_caps(self, user_id: str) -> Caps | None:
        async with self.pool.connection(timeout=self.query_timeout) as conn:
            cur = await conn.execute(
                sql.SQL("SELECT daily_cap_usd, monthly_cap_usd FROM {} WHERE user_id = %s").format(
                    _table("budgets")
                ),
                (user_id,),
            )
            row = await cur.fetchone()
        return Caps(row[0], row[1]) if row else None
