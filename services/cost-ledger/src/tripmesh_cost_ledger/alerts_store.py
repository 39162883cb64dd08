"""Postgres adapter for raised cost alerts (`ledger.alerts`, an outbox: see sweeper.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from tripmesh_contracts.rpc import AlertScope, CostAlertView

from tripmesh_cost_ledger.accounting import table

_COLUMNS = sql.SQL(
    "alert_id AS id, user_id, scope, period, plan_id, threshold_percent, spent_usd, cap_usd, raised_at"
)


class AlertStore:
    def __init__(self, pool: AsyncConnectionPool[Any], *, timeout: float = 3.0) -> None:
        self.pool = pool
        self.timeout = timeout

    async def for_user(self, user_id: str, limit: int) -> list[CostAlertView]:
        """Newest first."""
        return await self._select(
            sql.SQL("SELECT {} FROM {} WHERE user_id = %s ORDER BY raised_at DESC, alert_id LIMIT %s").format(
                _COLUMNS, table("alerts")
            ),
            (user_id, limit),
        )

    async def unpublished(self, limit: int = 500) -> list[CostAlertView]:
        return await self._select(
            sql.SQL("SELECT {} FROM {} WHERE published_at IS NULL ORDER BY raised_at LIMIT %s").format(
                _COLUMNS, table("alerts")
            ),
            (limit,),
        )

    async def mark_published(self, alert_ids: Sequence[str]) -> None:
        if not alert_ids:
            return
        async with self.pool.connection(timeout=self.timeout) as conn:
            query = sql.SQL("UPDATE {} SET published_at = now() WHERE alert_id = ANY(%s)")
            await conn.execute(query.format(table("alerts")), (list(alert_ids),))

    async def _select(self, query: sql.Composed, params: tuple[Any, ...]) -> list[CostAlertView]:
        async with self.pool.connection(timeout=self.timeout) as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(query, params)
            rows = await cur.fetchall()
        return [CostAlertView.model_validate(row | {"scope": AlertScope(row["scope"])}) for row in rows]
