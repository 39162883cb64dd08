"""Postgres adapter for plan shares (`accounts.plan_shares`, migration 003).

A share is live while it is not revoked, not expired and its plan is not deleted; every query
that grants access checks all three in SQL, so a revocation or an expiry takes effect on the
very next request. Link tokens are random (256 bits) and only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool
from tripmesh_contracts import new_id

from tripmesh_gateway.store import PLAN_COLUMNS, SCHEMA, USER_COLUMNS, PlanIndexRow, UserRecord

LINK_TOKEN_PREFIX = "tms_"


class ShareType(StrEnum):
    LINK = "link"
    USER = "user"


def new_link_token() -> str:
    return LINK_TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class ShareRecord:
    id: str
    plan_id: str
    owner_id: str
    share_type: str
    shared_with_user_id: str | None
    shared_with_username: str | None
    shared_with_email: str | None
    searchable: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_accessed_at: datetime | None
    access_count: int
    expired: bool


SHARE_SELECT = (
    f"SELECT s.id, s.plan_id, s.owner_id, s.share_type, s.shared_with_user_id,"
    f" u.username AS shared_with_username, u.email AS shared_with_email, s.searchable, s.created_at,"
    f" s.expires_at, s.revoked_at, s.last_accessed_at, s.access_count,"
    f" (s.expires_at IS NOT NULL AND s.expires_at <= now()) AS expired"
    f" FROM {SCHEMA}.plan_shares s LEFT JOIN {SCHEMA}.users u ON u.id = s.shared_with_user_id"
)
LIVE = "s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > now())"
VISIBLE_PLAN = "p.deleted_at IS NULL AND p.published_at IS NOT NULL"
SHARED_PLAN_COLUMNS = ", ".join(f"p.{c.strip()}" for c in PLAN_COLUMNS.split(","))


class AmbiguousUser(Exception):
    pass


class ShareStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def find_user(self, ref: str) -> UserRecord | None:
        """An active account by id, e-mail (any case) or username; AmbiguousUser when a
        username names several accounts (usernames are not unique, e-mails are)."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(UserRecord))
            for where in ("id = %s", "lower(email) = lower(%s)", "username = %s"):
                await cur.execute(
                    f"SELECT {USER_COLUMNS} FROM {SCHEMA}.users WHERE {where} AND is_active LIMIT 2", (ref,)
                )
                found = await cur.fetchall()
                if len(found) > 1:
                    raise AmbiguousUser(ref)
                if found:
                    return found[0]
        return None

    async def create_link(self, plan_id: str, owner_id: str, token: str, expires_at: datetime | None) -> str:
        share_id = new_id()
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO {SCHEMA}.plan_shares"
                " (id, plan_id, owner_id, share_type, token_hash, expires_at)"
                " VALUES (%s, %s, %s, 'link', %s, %s)",
                (share_id, plan_id, owner_id, token_hash(token), expires_at),
            )
        return share_id

    async def share_with_user(
        self, plan_id: str, owner_id: str, reader_id: str, expires_at: datetime | None, searchable: bool
    ) -> tuple[str, bool]:
        """(share id, created): sharing again with the same reader updates the live share."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO {SCHEMA}.plan_shares"
                " (id, plan_id, owner_id, share_type, shared_with_user_id, expires_at, searchable)"
                " VALUES (%s, %s, %s, 'user', %s, %s, %s)"
                " ON CONFLICT (plan_id, shared_with_user_id)"
                " WHERE shared_with_user_id IS NOT NULL AND revoked_at IS NULL"
                " DO UPDATE SET expires_at = EXCLUDED.expires_at, searchable = EXCLUDED.searchable"
                " RETURNING id, (xmax = 0) AS created",
                (new_id(), plan_id, owner_id, reader_id, expires_at, searchable),
            )
            row = await cur.fetchone()
        assert row is not None
        return str(row[0]), bool(row[1])

    async def get(self, plan_id: str, share_id: str) -> ShareRecord | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ShareRecord))
            await cur.execute(
                f"{SHARE_SELECT} WHERE s.plan_id = %s AND s.id = %s AND s.revoked_at IS NULL",
                (plan_id, share_id),
            )
            return await cur.fetchone()

    async def list_for_plan(self, plan_id: str) -> list[ShareRecord]:
        """Every share of the plan that is not revoked (expired ones too, marked expired)."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ShareRecord))
            await cur.execute(
                f"{SHARE_SELECT} WHERE s.plan_id = %s AND s.revoked_at IS NULL ORDER BY s.created_at, s.id",
                (plan_id,),
            )
            return await cur.fetchall()

    async def revoke(self, plan_id: str, share_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE {SCHEMA}.plan_shares SET revoked_at = now()"
                " WHERE plan_id = %s AND id = %s AND revoked_at IS NULL",
                (plan_id, share_id),
            )
            return cur.rowcount > 0

    async def plan_for_reader(self, reader_id: str, plan_id: str) -> PlanIndexRow | None:
        """The plan if a live share names `reader_id` and the plan is visible."""
        return await self._one_plan(
            f"s.plan_id = %s AND s.shared_with_user_id = %s AND {LIVE} AND {VISIBLE_PLAN}",
            (plan_id, reader_id),
        )

    async def plan_for_token(self, token: str) -> PlanIndexRow | None:
        """The plan a live link token opens (and counts the access)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE {SCHEMA}.plan_shares s SET access_count = access_count + 1,"
                f" last_accessed_at = now() FROM {SCHEMA}.plans_index p"
                f" WHERE s.token_hash = %s AND p.plan_id = s.plan_id AND {LIVE} AND {VISIBLE_PLAN}"
                " RETURNING s.plan_id",
                (token_hash(token),),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return await self._one_plan(f"p.plan_id = %s AND {VISIBLE_PLAN}", (row[0],), join=False)

    async def shared_with(self, reader_id: str, limit: int, offset: int) -> tuple[list[PlanIndexRow], int]:
        """Plans with a live share naming `reader_id`, newest share first, and their count."""
        where = f"s.shared_with_user_id = %s AND {LIVE} AND {VISIBLE_PLAN}"
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(PlanIndexRow))
            await cur.execute(
                f"SELECT {SHARED_PLAN_COLUMNS} FROM {SCHEMA}.plan_shares s"
                f" JOIN {SCHEMA}.plans_index p ON p.plan_id = s.plan_id WHERE {where}"
                " ORDER BY s.created_at DESC, s.id LIMIT %s OFFSET %s",
                (reader_id, limit, offset),
            )
            rows = await cur.fetchall()
            count = await conn.execute(
                f"SELECT count(*) FROM {SCHEMA}.plan_shares s"
                f" JOIN {SCHEMA}.plans_index p ON p.plan_id = s.plan_id WHERE {where}",
                (reader_id,),
            )
            total = await count.fetchone()
        return rows, int(total[0]) if total else 0

    async def searchable_for(self, reader_id: str, limit: int) -> dict[str, set[str]]:
        """owner id -> plan ids shared with `reader_id` that the owner let search find."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT p.user_id, p.plan_id FROM {SCHEMA}.plan_shares s"
                f" JOIN {SCHEMA}.plans_index p ON p.plan_id = s.plan_id"
                f" WHERE s.shared_with_user_id = %s AND s.searchable AND {LIVE} AND {VISIBLE_PLAN}"
                " ORDER BY s.created_at DESC LIMIT %s",
                (reader_id, limit),
            )
            out: dict[str, set[str]] = {}
            for owner_id, plan_id in await cur.fetchall():
                out.setdefault(owner_id, set()).add(plan_id)
            return out

    async def _one_plan(self, where: str, params: tuple[str, ...], join: bool = True) -> PlanIndexRow | None:
        source = (
            f"{SCHEMA}.plan_shares s JOIN {SCHEMA}.plans_index p ON p.plan_id = s.plan_id"
            if join
            else f"{SCHEMA}.plans_index p"
        )
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(PlanIndexRow))
            await cur.execute(f"SELECT {SHARED_PLAN_COLUMNS} FROM {source} WHERE {where} LIMIT 1", params)
            return await cur.fetchone()
