"""Per-plan serialisation across replicas: a Postgres advisory lock on the plan id.

LangGraph's checkpointer has no cross-process lock: two replicas resuming one plan at once
would fork its thread. Every graph invoke/resume therefore runs under
`pg_advisory_lock(PLANNER_LOCK_SPACE, hashtext(plan_id))`, held on a dedicated session
(autocommit, so no transaction idles while the graph runs). A process-local asyncio lock in
front keeps one replica's handlers from queueing many sessions on the same plan. A hash
collision only serialises two unrelated plans, never lets two runs of one plan overlap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from tripmesh_kit.consume import TransientError
from tripmesh_kit.pg import CheckUnlessRecent

from tripmesh_planner import metrics

PLANNER_LOCK_SPACE = 0x504C4E  # "PLN": keeps our keys apart from other advisory locks


class PlanLocks:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        """`pool`: from make_lock_pool, whose sessions carry the lock timeout."""
        self.pool = pool
        self._local: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def _local_lock(self, plan_id: str) -> AsyncIterator[None]:
        lock, users = self._local.get(plan_id, (asyncio.Lock(), 0))
        self._local[plan_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._local[plan_id]
            if users <= 1:
                del self._local[plan_id]
            else:
                self._local[plan_id] = (lock, users - 1)

    @asynccontextmanager
    async def hold(self, plan_id: str) -> AsyncIterator[None]:
        """Hold the plan's lock; TransientError (-> nak, retried later) if another replica
        keeps it longer than the timeout."""
        async with self._local_lock(plan_id), self.pool.connection() as conn:
            started = time.perf_counter()
            try:
                # lock_timeout is the session's (set once per connection: make_lock_pool)
                await conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (PLANNER_LOCK_SPACE, plan_id))
            except psycopg.errors.LockNotAvailable as exc:
                raise TransientError(f"plan {plan_id} is busy in another replica") from exc
            metrics.LOCK_WAIT_SECONDS.observe(time.perf_counter() - started)
            try:
                yield
            finally:
                try:
                    await conn.execute(
                        "SELECT pg_advisory_unlock(%s, hashtext(%s))", (PLANNER_LOCK_SPACE, plan_id)
                    )
                except BaseException:
                    # Never hand a session that may still hold the lock back to the pool:
                    # closing it is what releases the lock server-side.
                    await conn.close()
                    raise


def make_lock_pool(conninfo: str, size: int, timeout_seconds: float) -> AsyncConnectionPool:
    """Sessions for the plan locks: autocommit, and `lock_timeout` set once when a session
    opens, not by a statement before every lock (an operator's own `options` in the URL
    are left alone)."""
    timeout_ms = int(timeout_seconds * 1000)

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f"SET lock_timeout = {timeout_ms}")

    return AsyncConnectionPool(
        conninfo,
        name="planner-locks",
        min_size=1,
        max_size=size,
        open=False,
        check=CheckUnlessRecent().check,
        configure=configure,
        reconnect_timeout=0,
        kwargs={"autocommit": True},
    )
