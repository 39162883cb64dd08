"""LangGraph's Postgres checkpointer, in its own schema, set up once across replicas."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from tripmesh_kit.pg import CheckUnlessRecent, ensure_schema


def connection_kwargs(schema: str) -> dict[str, Any]:
    # What AsyncPostgresSaver requires (autocommit, no server-side prepared statements, dict
    # rows); search_path puts its tables (checkpoints, checkpoint_writes, ...) in our schema.
    return {
        "autocommit": True,
        "prepare_threshold": 0,
        "row_factory": dict_row,
        "options": f"-c search_path={schema}",
    }


def make_checkpoint_pool(conninfo: str, schema: str, size: int) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        conninfo,
        name="planner-checkpoints",
        min_size=1,
        max_size=size,
        open=False,
        check=CheckUnlessRecent().check,
        reconnect_timeout=0,
        kwargs=connection_kwargs(schema),
    )


def setup_lock_key(schema: str) -> int:
    return zlib.crc32(f"tripmesh-checkpoints:{schema}".encode())


async def setup_checkpoints(conninfo: str, schema: str, poll_seconds: float = 0.1) -> None:
    """Create the schema and run the saver's own migrations. `setup()` is not safe to run
    from two replicas at once (it inserts migration rows), hence the advisory lock.

    The lock is *polled* (`pg_try_advisory_lock`), never waited for: the saver's migrations
    include `CREATE INDEX CONCURRENTLY`, which waits for every open transaction to end - and
    a replica blocked in `pg_advisory_lock` is an open transaction waiting for the lock
    holder. Two replicas starting together deadlocked that way (Postgres aborted one)."""
    lock_key = setup_lock_key(schema)
    conn = await psycopg.AsyncConnection.connect(conninfo, **connection_kwargs(schema))
    async with conn:
        await poll_lock(conn, lock_key, poll_seconds)
        try:
            await ensure_schema(conn, schema)  # the planner's role owns it, may not create schemas
            await AsyncPostgresSaver(conn).setup()
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))


async def poll_lock(conn: psycopg.AsyncConnection[Any], key: int, poll_seconds: float) -> None:
    """Take the session-level advisory lock, each try a statement that ends at once."""
    while True:
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (key,))).fetchone()
        if row and row["locked"]:
            return
        await asyncio.sleep(poll_seconds)
