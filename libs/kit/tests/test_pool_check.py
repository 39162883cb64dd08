"""CheckUnlessRecent (pg.py): a connection lent less than a second ago is lent again without
the round trip of psycopg_pool's check; any other is checked. A fake connection records the
check's statements (pure logic: no Postgres)."""

from __future__ import annotations

from typing import Any, cast

import psycopg
import pytest
from tripmesh_kit.pg import CheckUnlessRecent


class FakeConnection:
    autocommit = True

    def __init__(self, broken: bool = False) -> None:
        self.executed: list[str] = []
        self.broken = broken

    async def execute(self, query: str) -> None:
        self.executed.append(query)
        if self.broken:
            raise psycopg.OperationalError("server closed the connection unexpectedly")


def conn(broken: bool = False) -> tuple[FakeConnection, psycopg.AsyncConnection[Any]]:
    fake = FakeConnection(broken)
    return fake, cast(psycopg.AsyncConnection[Any], fake)


async def test_a_connection_never_lent_is_checked() -> None:
    fake, c = conn()
    await CheckUnlessRecent(clock=lambda: 100.0).check(c)
    assert fake.executed == [""]


async def test_a_connection_lent_within_the_window_is_lent_unchecked_and_an_idle_one_checked() -> None:
    now = [100.0]
    recent = CheckUnlessRecent(fresh_seconds=1.0, clock=lambda: now[0])
    fake, c = conn()
    await recent.check(c)  # first lend: checked
    now[0] = 100.9
    await recent.check(c)
    assert fake.executed == [""] and recent.checks_skipped == 1
    now[0] = 101.8  # 0.9 s after the last lend: the window runs from the latest lend
    await recent.check(c)
    assert fake.executed == [""] and recent.checks_skipped == 2
    now[0] = 102.8  # idle for a whole second
    await recent.check(c)
    assert fake.executed == ["", ""]


async def test_each_connection_has_its_own_lend_time() -> None:
    now = [5.0]
    recent = CheckUnlessRecent(clock=lambda: now[0])
    (old, old_c), (new, new_c) = conn(), conn()
    await recent.check(old_c)
    now[0] = 7.0
    await recent.check(new_c)
    await recent.check(old_c)
    await recent.check(new_c)
    assert old.executed == ["", ""] and new.executed == [""]


async def test_a_connection_that_failed_its_check_is_checked_again_next_time() -> None:
    """The pool discards it; were it offered again, nothing would vouch for it."""
    recent = CheckUnlessRecent(clock=lambda: 1.0)
    fake, c = conn(broken=True)
    for _ in range(2):
        with pytest.raises(psycopg.OperationalError):
            await recent.check(c)
    assert fake.executed == ["", ""] and recent.checks_skipped == 0
