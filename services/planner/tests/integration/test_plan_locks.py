"""The plan lock across replicas: a second holder waits at most the lock timeout, then gets a
TransientError (the message is nak'ed and retried), and the lock is free again after release.

Two PlanLocks on two pools stand for two replicas; the timeout is the session's
`lock_timeout`, set once per connection by make_lock_pool.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from tripmesh_kit.consume import TransientError
from tripmesh_planner.locks import PlanLocks, make_lock_pool

pytestmark = pytest.mark.integration

TIMEOUT = 0.5


async def test_a_second_replica_waits_the_lock_timeout_then_backs_off(fresh_database_url: str) -> None:
    pools = [make_lock_pool(fresh_database_url, size=2, timeout_seconds=TIMEOUT) for _ in range(2)]
    for pool in pools:
        await pool.open(wait=True)
    first, second = (PlanLocks(pool) for pool in pools)
    try:
        async with first.hold("plan-1"):
            started = time.monotonic()
            with pytest.raises(TransientError, match="busy in another replica"):
                async with second.hold("plan-1"):
                    pytest.fail("two replicas held one plan's lock")
            waited = time.monotonic() - started
            # another plan is not blocked by this one
            async with second.hold("plan-2"):
                pass
        assert waited >= TIMEOUT * 0.9, f"gave up after {waited:.2f} s, before the lock timeout"
        # released: the second replica takes it at once
        async with asyncio.timeout(5):
            async with second.hold("plan-1"):
                pass
        async with pools[0].connection() as conn:
            row = await (await conn.execute("SHOW lock_timeout")).fetchone()
        assert row is not None and row[0] == "500ms"
    finally:
        for pool in pools:
            await pool.close()
