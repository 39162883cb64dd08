"""Shared by the planner's Postgres adapters: the schema name and one-row helpers."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


class SchemaStore:
    def __init__(self, pool: AsyncConnectionPool, schema: str = "planner") -> None:
        self.pool = pool
        self.schema = schema

    def q(self, sql: str) -> str:
        """`{s}` in SQL is the (quoted) schema: one schema per service, name from settings."""
        return sql.replace("{s}", f'"{self.schema}"')

    async def _one(
        self, conn: AsyncConnection[Any], sql: str, params: tuple[Any, ...]
    ) -> dict[str, Any] | None:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(self.q(sql), params)
        return await cur.fetchone()

    async def _all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(self.q(sql), params)
            return await cur.fetchall()
