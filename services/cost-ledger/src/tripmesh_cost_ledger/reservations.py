"""Postgres adapter for budgets: reservations, their expiry, plan caps, per-user caps and tier.

`reserve` is the heart of enforcement. Under a per-user transaction-scoped advisory lock
(reservations of one user are serialized; other users run in parallel), ONE statement reads
the user's settled spend and what open reservations hold - one snapshot, so a usage row that
an ingest commits meanwhile is counted exactly once, either as spend or as a hold - and the
decision row is inserted before the lock is released. Concurrent calls can therefore never
jointly pass a cap: each sees every reservation granted before it.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from tripmesh_contracts.rpc import ReserveRequest

from tripmesh_cost_ledger.accounting import table
from tripmesh_cost_ledger.budgeting import Decision, Exposure, Limits, plan_cap, reserve_decision
from tripmesh_cost_ledger.domain import ZERO, Caps, effective_caps, month_bounds

_SNAPSHOT = sql.SQL(
    # one statement, so one snapshot: spend and holds are read at the same instant
    "WITH held AS (SELECT"
    "  COALESCE(sum(COALESCE(actual_usd, amount_usd)) FILTER (WHERE day = %(day)s), 0) AS day_held,"
    "  COALESCE(sum(COALESCE(actual_usd, amount_usd)) FILTER (WHERE day BETWEEN %(m1)s AND %(m2)s), 0)"
    "    AS month_held,"
    "  COALESCE(sum(COALESCE(actual_usd, amount_usd)) FILTER (WHERE plan_id = %(plan)s), 0) AS plan_held"
    "  FROM {res} WHERE user_id = %(user)s AND granted AND accounted_at IS NULL),"
    " spent AS (SELECT COALESCE(sum(cost_usd) FILTER (WHERE day = %(day)s), 0) AS day_spent,"
    "  COALESCE(sum(cost_usd), 0) AS month_spent"
    "  FROM {daily} WHERE user_id = %(user)s AND day BETWEEN %(m1)s AND %(m2)s),"
    # the plan's cap: the lowest ever asked for (a data-modifying CTE: its RETURNING is the
    # new value; no row when the request names no plan or no cap applies)
    " cap AS (INSERT INTO {caps} AS c (user_id, plan_id, cap_usd)"
    "  SELECT %(user)s, %(plan)s::text, %(plan_cap)s::numeric"
    "  WHERE %(plan)s::text IS NOT NULL AND %(plan_cap)s::numeric IS NOT NULL"
    "  ON CONFLICT (user_id, plan_id) DO UPDATE SET cap_usd = LEAST(c.cap_usd, EXCLUDED.cap_usd)"
    "  RETURNING cap_usd)"
    " SELECT spent.day_spent, spent.month_spent, held.day_held, held.month_held, held.plan_held,"
    "  (SELECT cost_usd FROM {plans} WHERE user_id = %(user)s AND plan_id = %(plan)s),"
    "  (SELECT cap_usd FROM cap),"
    "  b.tier, b.daily_cap_usd, b.monthly_cap_usd"
    " FROM spent CROSS JOIN held LEFT JOIN {budgets} b ON b.user_id = %(user)s"
).format(
    res=table("reservations"),
    daily=table("user_daily_totals"),
    plans=table("plan_totals"),
    caps=table("plan_caps"),
    budgets=table("budgets"),
)
_INSERT = sql.SQL(
    "INSERT INTO {} (reservation_id, user_id, plan_id, agent, model, amount_usd, granted,"
    " reason, state, day, created_at, expires_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (reservation_id) DO NOTHING RETURNING reservation_id"
).format(table("reservations"))
_EARLIER = sql.SQL("SELECT granted, reason, expires_at FROM {} WHERE reservation_id = %s").format(
    table("reservations")
)


def user_lock_key(user_id: str) -> int:
    """A stable signed 64-bit advisory-lock key for one user's reservations."""
    return zlib.crc32(f"ledger.reserve:{user_id}".encode()) - 2**31


@dataclass(frozen=True)
class Reservation:
    granted: bool
    reason: str | None
    remaining: Decimal | None
    expires_at: datetime


@dataclass(frozen=True)
class DueReservation:
    """An unsettled reservation past its expiry: charged at `amount_usd`, estimated."""

    reservation_id: str
    user_id: str
    plan_id: str | None
    agent: str | None
    model: str | None
    amount_usd: Decimal
    created_at: datetime


@dataclass(frozen=True)
class UserBudget:
    tier: str | None
    override: Caps
    """The user's own caps (None where the tier default applies)."""
    daily_spent: Decimal
    monthly_spent: Decimal
    reserved: Decimal


class ReservationStore:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        tier_caps: dict[str, Caps],
        plan_cap_default: Decimal | None,
        *,
        timeout: float = 3.0,
    ) -> None:
        self.pool = pool
        self.tier_caps = tier_caps
        self.plan_cap_default = plan_cap_default
        self.timeout = timeout

    async def reserve(self, req: ReserveRequest, now: datetime) -> Reservation:
        day = now.astimezone(UTC).date()
        m1, m2 = month_bounds(day)
        cap_for_plan = plan_cap(self.plan_cap_default, req.plan_cap_usd) if req.plan_id else None
        async with self.pool.connection(timeout=self.timeout) as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (user_lock_key(req.user_id),))
            params = {"user": req.user_id, "plan": req.plan_id, "day": day, "m1": m1, "m2": m2}
            cur = await conn.execute(_SNAPSHOT, params | {"plan_cap": cap_for_plan})
            row = await cur.fetchone()
            assert row is not None  # aggregates over a CROSS JOIN of two aggregates: one row
            day_spent, month_spent, day_held, month_held, plan_held, plan_spent, stored_cap = row[:7]
            caps = effective_caps(row[7] or "free", self.tier_caps, Caps(row[8], row[9]))
            limits = Limits(caps.daily_usd, caps.monthly_usd, stored_cap if req.plan_id else None)
            decision: Decision = reserve_decision(
                req.amount_usd,
                limits,
                Exposure(day_spent, day_held),
                Exposure(month_spent, month_held),
                Exposure(plan_spent or ZERO, plan_held) if req.plan_id else None,
            )
            expires_at = now + timedelta(seconds=req.ttl_seconds)
            state = "held" if decision.granted else "denied"
            values = (req.reservation_id, req.user_id, req.plan_id, req.agent, req.model, req.amount_usd)
            cur = await conn.execute(
                _INSERT, (*values, decision.granted, decision.reason, state, day, now, expires_at)
            )
            if await cur.fetchone() is None:
                # asked before (a retried request): the first decision stands, nothing more is held
                cur = await conn.execute(_EARLIER, (req.reservation_id,))
                earlier = await cur.fetchone()
                assert earlier is not None
                return Reservation(earlier[0], earlier[1], None, earlier[2])
        return Reservation(decision.granted, decision.reason, decision.remaining, expires_at)

    async def settle(self, reservation_id: str, user_id: str, actual: Decimal) -> tuple[bool, str]:
        """(settled now, the reservation's state). Only a held reservation settles: an expired
        one was charged as an estimate, which the usage event will replace."""
        async with self.pool.connection(timeout=self.timeout) as conn:
            cur = await conn.execute(
                sql.SQL(
                    "UPDATE {} SET actual_usd = %s, state = 'settled', settled_at = now()"
                    " WHERE reservation_id = %s AND user_id = %s AND state = 'held' RETURNING state"
                ).format(table("reservations")),
                (actual, reservation_id, user_id),
            )
            if await cur.fetchone():
                return True, "settled"
            cur = await conn.execute(
                sql.SQL("SELECT state FROM {} WHERE reservation_id = %s AND user_id = %s").format(
                    table("reservations")
                ),
                (reservation_id, user_id),
            )
            row = await cur.fetchone()
        return False, row[0] if row else "unknown"

    async def expire_due(
        self, charge: Callable[[list[DueReservation]], Awaitable[None]], now: datetime, limit: int = 500
    ) -> int:
        """Lock up to `limit` due reservations (SKIP LOCKED: replicas share the work), have
        `charge` publish their estimates, then mark them expired - all or nothing: if the
        publish fails the transaction rolls back and the next sweep tries again."""
        async with self.pool.connection(timeout=self.timeout) as conn, conn.transaction():
            cur = await conn.execute(
                sql.SQL(
                    "SELECT reservation_id, user_id, plan_id, agent, model, amount_usd, created_at FROM {}"
                    " WHERE state = 'held' AND accounted_at IS NULL AND expires_at < %s"
                    " ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED"
                ).format(table("reservations")),
                (now, limit),
            )
            due = [DueReservation(*row) for row in await cur.fetchall()]
            if not due:
                return 0
            await charge(due)
            await conn.execute(
                sql.SQL("UPDATE {} SET state = 'expired' WHERE reservation_id = ANY(%s)").format(
                    table("reservations")
                ),
                ([d.reservation_id for d in due],),
            )
        return len(due)

    async def remember_tier(self, user_id: str, tier: str) -> None:
        """The gateway names the user's tier on every budget call; reservations use it."""
        async with self.pool.connection(timeout=self.timeout) as conn:
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {t} AS b (user_id, tier) VALUES (%s, %s) ON CONFLICT (user_id)"
                    " DO UPDATE SET tier = EXCLUDED.tier WHERE b.tier IS DISTINCT FROM EXCLUDED.tier"
                ).format(t=table("budgets")),
                (user_id, tier.lower()),
            )

    async def set_caps(self, user_id: str, tier: str, caps: Caps, set_by: str) -> None:
        async with self.pool.connection(timeout=self.timeout) as conn:
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (user_id, tier, daily_cap_usd, monthly_cap_usd, set_by)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET tier = EXCLUDED.tier,"
                    " daily_cap_usd = EXCLUDED.daily_cap_usd, monthly_cap_usd = EXCLUDED.monthly_cap_usd,"
                    " set_by = EXCLUDED.set_by, updated_at = now()"
                ).format(table("budgets")),
                (user_id, tier.lower(), caps.daily_usd, caps.monthly_usd, set_by),
            )

    async def user_budget(self, user_id: str, today: date) -> UserBudget:
        m1, m2 = month_bounds(today)
        params = {"user": user_id, "plan": None, "plan_cap": None, "day": today, "m1": m1, "m2": m2}
        async with self.pool.connection(timeout=self.timeout) as conn:
            cur = await conn.execute(_SNAPSHOT, params)
            row = await cur.fetchone()
        assert row is not None
        day_spent, month_spent, _, month_held = row[:4]
        return UserBudget(row[7], Caps(row[8], row[9]), day_spent, month_spent, month_held)
