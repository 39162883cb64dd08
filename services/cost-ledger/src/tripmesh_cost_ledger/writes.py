"""The ingest's write: a batch of usage rows into `usage_events` and the running totals, in
two round trips, with the aggregation done by Postgres.

1. Binary COPY of the batch into a per-connection temporary table (`ledger_stage`): the rows
   are encoded in C, not built as `unnest` array parameters in Python.
2. One statement of data-modifying CTEs: `INSERT ... SELECT FROM ledger_stage ON CONFLICT
   (event_id) DO NOTHING RETURNING` the rows it added, and the daily, monthly and per-plan
   upserts grouped *from that RETURNING*, so the totals grow by exactly the rows this insert
   added (a redelivered or replayed event returns nothing and adds nothing: the idempotency
   argument of domain.py, `aggregate` over newly inserted rows, now in SQL). It returns the
   added event ids (one array) and the new running cost of every key whose cost grew (the
   alerts' input).

Why (bench/ledger/ingest_paths.py, cProfile of `LedgerStore.ingest`): building the totals'
array parameters in Python (psycopg's text array dumper escapes every element with a regex)
and aggregating rows in Python cost the consumer ~60 us of CPU per event, more than the
whole NATS path. Postgres groups 500 rows in well under a millisecond.

`tests/unit/test_aggregation.py` keeps the Python `aggregate` as the specification; the
integration tests check the stored totals against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, sql

from tripmesh_cost_ledger.accounting import RunningTotals, column_list, table
from tripmesh_cost_ledger.domain import COLUMNS, UsageRow

_COLUMN_TYPES = {
    "version": "int4",
    "attempt": "int4",
    "prompt_tokens": "int8",
    "completion_tokens": "int8",
    "latency_ms": "int8",
    "cost_usd": "numeric",
    "cache_hit": "bool",
    "success": "bool",
    "estimated": "bool",
    "occurred_at": "timestamptz",
}
COPY_TYPES = [_COLUMN_TYPES.get(c, "text") for c in COLUMNS]
"""The binary COPY's type of each of COLUMNS, in order."""


_STAGE = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS ledger_stage (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
).format(table=table("usage_events"))
_COPY_STAGE = sql.SQL("COPY ledger_stage ({cols}) FROM STDIN (FORMAT BINARY)").format(
    cols=column_list(COLUMNS)
)

# Keys are inserted in sorted order so concurrent replicas take row locks in the same order.
_WRITE = sql.SQL(
    """
WITH ins AS (
    INSERT INTO {events} ({cols}) SELECT {cols} FROM ledger_stage ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, user_id, plan_id, occurred_at, prompt_tokens, completion_tokens, cost_usd
), days AS (
    SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS calls,
           sum(prompt_tokens) AS pt, sum(completion_tokens) AS ct, sum(cost_usd) AS cost
    FROM ins GROUP BY 1, 2
), months AS (
    SELECT user_id, date_trunc('month', day)::date AS month, sum(calls) AS calls, sum(cost) AS cost
    FROM days GROUP BY 1, 2
), plans AS (
    SELECT user_id, plan_id, count(*) AS calls, sum(prompt_tokens) AS pt,
           sum(completion_tokens) AS ct, sum(cost_usd) AS cost,
           min(occurred_at) AS first_at, max(occurred_at) AS last_at
    FROM ins WHERE plan_id IS NOT NULL GROUP BY 1, 2
), d AS (
    INSERT INTO {daily} AS t (user_id, day, calls, prompt_tokens, completion_tokens, cost_usd)
    SELECT user_id, day, calls, pt, ct, cost FROM days ORDER BY 1, 2
    ON CONFLICT (user_id, day) DO UPDATE SET calls = t.calls + EXCLUDED.calls,
        prompt_tokens = t.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = t.completion_tokens + EXCLUDED.completion_tokens,
        cost_usd = t.cost_usd + EXCLUDED.cost_usd, updated_at = now()
    RETURNING t.user_id, t.day, t.cost_usd
), m AS (
    INSERT INTO {monthly} AS t (user_id, month, calls, cost_usd)
    SELECT user_id, month, calls, cost FROM months ORDER BY 1, 2
    ON CONFLICT (user_id, month) DO UPDATE SET calls = t.calls + EXCLUDED.calls,
        cost_usd = t.cost_usd + EXCLUDED.cost_usd, updated_at = now()
    RETURNING t.user_id, t.month, t.cost_usd
), p AS (
    INSERT INTO {plans} AS t (user_id, plan_id, calls, prompt_tokens, completion_tokens,
                              cost_usd, first_at, last_at)
    SELECT user_id, plan_id, calls, pt, ct, cost, first_at, last_at FROM plans ORDER BY 1, 2
    ON CONFLICT (user_id, plan_id) DO UPDATE SET calls = t.calls + EXCLUDED.calls,
        prompt_tokens = t.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = t.completion_tokens + EXCLUDED.completion_tokens,
        cost_usd = t.cost_usd + EXCLUDED.cost_usd,
        first_at = LEAST(t.first_at, EXCLUDED.first_at),
        last_at = GREATEST(t.last_at, EXCLUDED.last_at), updated_at = now()
    RETURNING t.user_id, t.plan_id, t.cost_usd
)
SELECT 'e', NULL::text, NULL::text, NULL::date, NULL::numeric, array_agg(event_id) FROM ins
UNION ALL
SELECT 'd', d.user_id, NULL, d.day, d.cost_usd, NULL
FROM d JOIN days ON days.user_id = d.user_id AND days.day = d.day WHERE days.cost > 0
UNION ALL
SELECT 'm', m.user_id, NULL, m.month, m.cost_usd, NULL
FROM m JOIN months ON months.user_id = m.user_id AND months.month = m.month WHERE months.cost > 0
UNION ALL
SELECT 'p', p.user_id, p.plan_id, NULL, p.cost_usd, NULL
FROM p JOIN plans ON plans.user_id = p.user_id AND plans.plan_id = p.plan_id WHERE plans.cost > 0
"""
).format(
    events=table("usage_events"),
    cols=column_list(COLUMNS),
    daily=table("user_daily_totals"),
    monthly=table("user_monthly_totals"),
    plans=table("plan_totals"),
)


async def write_batch(
    conn: AsyncConnection[Any], rows: Sequence[UsageRow]
) -> tuple[list[UsageRow], RunningTotals]:
    """Insert `rows` (unique event ids) and grow the totals by the ones that were new.

    Returns the rows this insert added (the others were stored before: duplicates) and the
    new running cost of every daily / monthly / plan key to which they added cost."""
    grown = RunningTotals()
    if not rows:
        return [], grown
    await conn.execute(_STAGE)
    async with conn.cursor().copy(_COPY_STAGE) as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            await copy.write_row(row)
    cur = await conn.execute(_WRITE, binary=True)
    added: set[str] = set()
    for kind, key, plan_id, day, cost, event_ids in await cur.fetchall():
        if kind == "e":  # one row: the added ids as one array (a row each cost more to load)
            added.update(event_ids or ())
        elif kind == "d":
            grown.daily[(key, _as_date(day))] = Decimal(cost)
        elif kind == "m":
            grown.monthly[(key, _as_date(day))] = Decimal(cost)
        else:
            grown.plans[(key, plan_id)] = Decimal(cost)
    return [row for row in rows if row.event_id in added], grown


def _as_date(value: Any) -> date:
    assert isinstance(value, date)
    return value
