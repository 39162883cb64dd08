"""Postgres helpers: versioned migrations applied at start-up, and outage classification.

Each service owns one schema and applies its own numbered migrations idempotently under an
advisory lock, so several replicas starting at once apply each migration exactly once.
"""

from __future__ import annotations

import time
import weakref
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
import psycopg_pool

from tripmesh_kit.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str, folder: str = "migrations") -> list[Migration]:
    """`NNN_name.sql` files shipped inside `package/folder`, in version order."""
    found = []
    for entry in resources.files(package).joinpath(folder).iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def ensure_schema(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    """CREATE SCHEMA only when it is missing: Postgres checks the CREATE privilege on the
    database even for `IF NOT EXISTS`, and a service's own role (issue #8) owns its schema
    without any right to create schemas."""
    cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if await cur.fetchone() is None:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'.encode())


async def apply_migrations(conninfo: str, schema: str, migrations: Sequence[Migration]) -> int:
    """Apply what is missing; returns how many ran. `{schema}` in SQL is the schema name."""
    lock_key = zlib.crc32(f"tripmesh-migrations:{schema}".encode())
    applied = 0
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (lock_key,))
        try:
            await ensure_schema(conn, schema)
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
                " version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute(f'SELECT version FROM "{schema}".schema_migrations')
            done = {row[0] for row in await cur.fetchall()}
            for mig in migrations:
                if mig.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(mig.sql.replace("{schema}", schema).encode())
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES (%s, %s)',
                        (mig.version, mig.name),
                    )
                applied += 1
                log.info("migration_applied", schema=schema, version=mig.version, name=mig.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))
    return applied


def is_store_outage(exc: BaseException) -> bool:
    """Postgres unreachable or restarting (as opposed to a bug or bad data)."""
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg.OperationalError | psycopg.InterfaceError):
        return True
    return isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.CannotConnectNow)


FRESH_CONNECTION_SECONDS = 1.0
"""A connection lent this recently is lent again without a check."""


class CheckUnlessRecent:
    """A pool `check` that skips connections lent within the last `fresh_seconds`.

    psycopg_pool's `check_connection` is a round trip to Postgres on *every* checkout; under
    load a connection is lent again milliseconds after its last use, and the check was ~10 %
    of the gateway's CPU per POST and one extra round trip per checkout in every service
    (#13). The check exists to find connections a Postgres restart broke while they sat idle.
    One lent less than a second ago was working then, or it came back broken and the pool
    discarded it (a closed connection is never lent again). If Postgres did go away within
    that second, the first statement fails with OperationalError - an outage every service
    already waits out (`is_store_outage`).

    The time is taken at checkout, by the check itself, not at the return through the pool's
    `reset` callback: given a `reset`, psycopg_pool hands every return to one of its
    background workers instead of putting the connection back at once (`_putconn`).
    """

    def __init__(
        self, fresh_seconds: float = FRESH_CONNECTION_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fresh_seconds = fresh_seconds
        self._clock = clock
        self._lent: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self.checks_skipped = 0

    async def check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        now = self._clock()
        lent_at = self._lent.get(conn)
        if lent_at is not None and now - lent_at < self.fresh_seconds:
            self._lent[conn] = now
            self.checks_skipped += 1
            return
        await psycopg_pool.AsyncConnectionPool.check_connection(conn)
        self._lent[conn] = now  # only once it passed: a failed check discards the connection


def make_pool(
    conninfo: str,
    *,
    name: str,
    min_size: int = 1,
    max_size: int = 10,
    autocommit: bool = False,
) -> psycopg_pool.AsyncConnectionPool:
    """An async pool that opens lazily and survives Postgres restarts (a connection not lent
    for a second or more is checked before it is lent again: CheckUnlessRecent).

    `autocommit=True` saves a lone statement its BEGIN and COMMIT, two round trips of three;
    a caller that wants several statements atomic must then say so with `conn.transaction()`
    (which it should anyway). Off by default: a service turns it on after checking that."""
    return psycopg_pool.AsyncConnectionPool(
        conninfo,
        name=name,
        min_size=min_size,
        max_size=max_size,
        open=False,
        check=CheckUnlessRecent().check,
        reconnect_timeout=0,  # keep trying forever; readiness reports the outage meanwhile
        kwargs={"autocommit": autocommit},
    )


async def pg_check(pool: psycopg_pool.AsyncConnectionPool) -> None:
    async with pool.connection(timeout=1.5) as conn:
        await conn.execute("SELECT 1")
