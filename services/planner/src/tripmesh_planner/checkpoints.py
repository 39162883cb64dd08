"""LangGraph's Postgres checkpointer, in its own schema, set up once across replicas."""

from __future__ import annotations

import zlib
from typing import Any

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


def connection_kwargs(schema: str) -> dict[str, Any]:
    # What AsyncPostgresSaver requires (autocommit, no server-side prepared statements, dict
    # rows); search_path puts its tables (checkpoints, checkpoint_writes, ...) in our schema.
    return {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row,
            "options": f"-c search_path={schema}"}


def make_checkpoint_pool(conninfo: str, schema: str, size: int) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        conninfo, name="planner-checkpoints", min_size=1, max_size=size, open=False,
        check=AsyncConnectionPool.check_connection, reconnect_timeout=0,
        kwargs=connection_kwargs(schema),
    )


async def setup_checkpoints(conninfo: str, schema: str) -> None:
    """Create the schema and run the saver's own migrations. `setup()` is not safe to run
    from two replicas at once (it inserts migration rows), hence the advisory lock."""
    lock_key = zlib.crc32(f"tripmesh-checkpoints:{schema}".encode())
    conn = await psycopg.AsyncConnection.connect(conninfo, **connection_kwargs(schema))
    async with conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (lock_key,))
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await AsyncPostgresSaver(conn).setup()
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))
