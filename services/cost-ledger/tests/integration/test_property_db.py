"""The aggregation property against the real store: any deliver / redeliver / replay sequence
of batches leaves Postgres with exactly the totals of the distinct events (bounded examples)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tripmesh_contracts import UsageEvent
from tripmesh_cost_ledger.app import migrate
from tripmesh_cost_ledger.domain import UsageRow, aggregate
from tripmesh_cost_ledger.store import LedgerStore
from tripmesh_kit.pg import make_pool

pytestmark = pytest.mark.integration

BASE = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)

events = st.builds(
    lambda n, user, plan, cost, minutes: UsageEvent(
        id=f"e{n}",
        user_id=user,
        plan_id=plan,
        model="m",
        provider="p",
        prompt_tokens=n,
        completion_tokens=2 * n,
        cost_usd=cost,
        occurred_at=BASE + timedelta(minutes=minutes),
    ),
    st.integers(0, 60),
    st.sampled_from(["ana", "bob"]),
    st.sampled_from([None, "p1", "p2"]),
    st.decimals(min_value=0, max_value=100, places=9),
    st.integers(0, 8 * 60),
)
# batches of events, some appearing in several batches (redelivery, replay) or twice in one
batch_sequences = st.lists(st.lists(events, min_size=1, max_size=12), min_size=1, max_size=6)


async def _db_totals(store: LedgerStore) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    async with store.pool.connection() as conn:
        daily = await (
            await conn.execute(
                "SELECT user_id, day, calls, prompt_tokens, completion_tokens, cost_usd"
                " FROM ledger.user_daily_totals ORDER BY 1, 2"
            )
        ).fetchall()
        plans = await (
            await conn.execute(
                "SELECT user_id, plan_id, calls, prompt_tokens, completion_tokens, cost_usd,"
                " first_at, last_at FROM ledger.plan_totals ORDER BY 1, 2"
            )
        ).fetchall()
    return daily, plans


async def _run(url: str, batches: list[list[UsageEvent]]) -> None:
    pool = make_pool(url, name="property", max_size=2)
    await pool.open()
    try:
        store = LedgerStore(pool)
        await store.truncate_derived()
        for batch in batches:
            await store.ingest([UsageRow.from_event(e) for e in batch])
            await store.ingest([UsageRow.from_event(e) for e in batch[:3]])  # redelivered

        first_copy: dict[str, UsageEvent] = {}
        for batch in batches:
            for e in batch:
                first_copy.setdefault(e.id, e)
        agg = aggregate(UsageRow.from_event(e) for e in first_copy.values())
        daily, plans = await _db_totals(store)
        assert daily == [
            (u, d, t.calls, t.prompt_tokens, t.completion_tokens, t.cost_usd)
            for (u, d), t in sorted(agg.daily.items())
        ]
        assert plans == [
            (u, p, t.calls, t.prompt_tokens, t.completion_tokens, t.cost_usd, t.first_at, t.last_at)
            for (u, p), t in sorted(agg.plans.items())
        ]
        assert await store.count_events() == len(first_copy)
        cost = sum((t.cost_usd for t in agg.daily.values()), Decimal(0))
        assert sum((row[5] for row in daily), Decimal(0)) == cost
    finally:
        await pool.close()


def test_store_totals_equal_distinct_events(ledger_db_url: str) -> None:
    asyncio.run(migrate(ledger_db_url))

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(batch_sequences)
    def check(batches: list[list[UsageEvent]]) -> None:
        asyncio.run(_run(ledger_db_url, batches))

    check()
