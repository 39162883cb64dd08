"""Replicas starting together set up LangGraph's checkpoint tables once, without deadlock.

Found by the e2e stack with two planners: the saver's migrations run `CREATE INDEX
CONCURRENTLY`, which waits for every open transaction - including a second replica's
`pg_advisory_lock` call blocked on the first one. Postgres detected the deadlock and the
second replica failed its start-up. Here both "replicas" are made to wait for the lock
first (the test holds it), so the one that gets it always builds its indexes while the
other is waiting.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from tripmesh_planner.checkpoints import setup_checkpoints, setup_lock_key

pytestmark = pytest.mark.integration

SCHEMA = "checkpoints_race"


async def wait_for_sessions_at_the_lock(conn: psycopg.AsyncConnection[tuple[int]], count: int) -> None:
    """Until `count` other sessions' latest statement is an advisory-lock call (waiting in
    it, or idle between two polls)."""
    while True:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " AND datname = current_database() AND query LIKE '%advisory_lock%'"
        )
        row = await cur.fetchone()
        if row is not None and row[0] >= count:
            return
        await asyncio.sleep(0.05)


async def test_two_replicas_waiting_for_the_setup_lock_both_start(fresh_database_url: str) -> None:
    holder = await psycopg.AsyncConnection.connect(fresh_database_url, autocommit=True)
    async with holder:
        await holder.execute("SELECT pg_advisory_lock(%s)", (setup_lock_key(SCHEMA),))
        replicas = [asyncio.create_task(setup_checkpoints(fresh_database_url, SCHEMA)) for _ in range(2)]
        await asyncio.wait_for(wait_for_sessions_at_the_lock(holder, 2), timeout=30)
        await holder.execute("SELECT pg_advisory_unlock(%s)", (setup_lock_key(SCHEMA),))

        await asyncio.wait_for(asyncio.gather(*replicas), timeout=60)

        cur = await holder.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname LIKE '%%thread_id_idx'",
            (SCHEMA,),
        )
        row = await cur.fetchone()
        assert row is not None and row[0] == 3  # checkpoints, checkpoint_blobs, checkpoint_writes
