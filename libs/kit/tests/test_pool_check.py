"""CheckUnlessRecent (pg.py): a connection back in the pool for under a second is lent
without the round trip of psycopg_pool's check; any other is checked. A fake connection
records the check's statements (pure logic: no Postgres)."""

from __future__ import annotations

from typing import Any, cast

import psycopg
from tripmesh_kit.pg import CheckUnlessRecent


class FakeConnection:
    autocommit = True

    def __init__(self) -> None:
        self.executed: list[str] = []

    async def execute(self, query: str) -> None:
        self.executed.append(query)


def conn() -> tuple[FakeConnection, psycopg.AsyncConnection[Any]]:
    fake = FakeConnection()
    return fake, cast(psycopg.AsyncConnection[Any], fake)


async def test_a_connection_never_returned_is_checked() -> None:
    fake, c = conn()
    await CheckUnlessRecent(clock=lambda: 100.0).check(c)
    assert fake.executed == [""]


async def test_a_connection_returned_within_the_window_is_lent_unchecked_and_an_older_one_checked() -> None:
    now = [100.0]
    recent = CheckUnlessRecent(fresh_seconds=1.0, clock=lambda: now[0])
    fake, c = conn()
    await recent.returned(c)
    now[0] = 100.9
    await recent.check(c)
    assert fake.executed == [] and recent.checks_skipped == 1
    now[0] = 101.0
    await recent.check(c)
    assert fake.executed == [""]


async def test_each_connection_has_its_own_return_time() -> None:
    now = [5.0]
    recent = CheckUnlessRecent(clock=lambda: now[0])
    (old, old_c), (new, new_c) = conn(), conn()
    await recent.returned(old_c)
    now[0] = 7.0
    await recent.returned(new_c)
    await recent.check(old_c)
    await recent.check(new_c)
    assert old.executed == [""] and new.executed == []
