"""Postgres adapter for the `accounts` schema: users, refresh tokens, the plan ownership index."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from tripmesh_kit.pg import apply_migrations, load_migrations

SCHEMA = "accounts"


async def migrate(dsn: str) -> int:
    return await apply_migrations(dsn, SCHEMA, load_migrations("tripmesh_gateway"))


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class UserRecord:
    id: str
    email: str
    username: str
    password_hash: str
    subscription_tier: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    role: str = Role.USER
    """user | admin (migration 002); only an operator grants admin."""
    first_name: str | None = None
    last_name: str | None = None
    preferences: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None
    """Profile fields (migration 004), the seeds' users columns."""

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


@dataclass(frozen=True)
class PlanIndexRow:
    plan_id: str
    user_id: str
    idempotency_key: str | None
    request_hash: str
    request: dict[str, Any]
    command: str
    title: str
    created_at: datetime
    published_at: datetime | None
    publish_error: str | None
    deleted_at: datetime | None


class EmailTaken(Exception):
    pass


class UsernameTaken(Exception):
    pass


class RefreshOutcome(StrEnum):
    ROTATED = "rotated"
    REUSED = "reused"
    """An already used token came back: the whole family is revoked."""
    INVALID = "invalid"


USER_COLUMNS = (
    "id, email, username, password_hash, subscription_tier, is_active, created_at, last_login_at, role,"
    " first_name, last_name, preferences, updated_at"
)
PLAN_COLUMNS = (
    "plan_id, user_id, idempotency_key, request_hash, request, command, title, created_at,"
    " published_at, publish_error, deleted_at"
)


class AccountStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # --- users -------------------------------------------------------------------------

    async def create_user(self, user_id: str, email: str, username: str, password_hash: str) -> UserRecord:
        try:
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(UserRecord))
                await cur.execute(
                    f"INSERT INTO {SCHEMA}.users (id, email, username, password_hash)"
                    f" VALUES (%s, %s, %s, %s) RETURNING {USER_COLUMNS}",
                    (user_id, email, username, password_hash),
                )
                row = await cur.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "users_username_lower_key":
                raise UsernameTaken(username) from exc
            raise EmailTaken(email) from exc
        assert row is not None
        return row

    async def user_by_email(self, email: str) -> UserRecord | None:
        return await self._one_user("lower(email) = lower(%s)", email)

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        return await self._one_user("id = %s", user_id)

    async def _one_user(self, where: str, value: str) -> UserRecord | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(UserRecord))
            await cur.execute(f"SELECT {USER_COLUMNS} FROM {SCHEMA}.users WHERE {where}", (value,))
            return await cur.fetchone()

    async def set_role(self, email: str, role: Role) -> UserRecord | None:
        """Give the account with this e-mail (any case) `role`; None when there is none."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(UserRecord))
            await cur.execute(
                f"UPDATE {SCHEMA}.users SET role = %s WHERE lower(email) = lower(%s)"
                f" RETURNING {USER_COLUMNS}",
                (role.value, email),
            )
            return await cur.fetchone()

    async def record_login(self, user_id: str, new_password_hash: str | None = None) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                f"UPDATE {SCHEMA}.users SET last_login_at = now(),"
                " password_hash = coalesce(%s, password_hash) WHERE id = %s",
                (new_password_hash, user_id),
            )

    # --- refresh tokens ------------------------------------------------------------------

    async def add_refresh_token(
        self, token_hash: bytes, user_id: str, family_id: str, expires_at: datetime
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO {SCHEMA}.refresh_tokens (token_hash, user_id, family_id, expires_at)"
                " VALUES (%s, %s, %s, %s)",
                (token_hash, user_id, family_id, expires_at),
            )
            # Housekeeping at login: expired tokens can never be used or replayed again.
            await conn.execute(
                f"DELETE FROM {SCHEMA}.refresh_tokens WHERE user_id = %s AND expires_at < now()",
                (user_id,),
            )

    async def rotate_refresh_token(
        self, old_hash: bytes, new_hash: bytes, expires_at: datetime
    ) -> tuple[RefreshOutcome, str | None, str | None]:
        """Use `old_hash` once and issue `new_hash` in its family (= session), atomically.
        Returns (outcome, user_id, session_id), the ids only when rotated. A reused token
        revokes its family and its session, so the session's access tokens die too."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                f"UPDATE {SCHEMA}.refresh_tokens t SET used_at = now()"
                " WHERE token_hash = %s AND used_at IS NULL AND revoked_at IS NULL"
                " AND expires_at > now() AND EXISTS (SELECT 1 FROM"
                f" {SCHEMA}.user_sessions s WHERE s.id = t.family_id AND s.revoked_at IS NULL)"
                " RETURNING user_id, family_id",
                (old_hash,),
            )
            used = await cur.fetchone()
            if used is not None:
                user_id, family_id = used
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.refresh_tokens (token_hash, user_id, family_id, expires_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (new_hash, user_id, family_id, expires_at),
                )
                await conn.execute(
                    f"UPDATE {SCHEMA}.user_sessions SET last_activity = now(), expires_at = %s WHERE id = %s",
                    (expires_at, family_id),
                )
                return RefreshOutcome.ROTATED, str(user_id), str(family_id)
            cur = await conn.execute(
                f"SELECT family_id, used_at FROM {SCHEMA}.refresh_tokens WHERE token_hash = %s",
                (old_hash,),
            )
            seen = await cur.fetchone()
            if seen is not None and seen[1] is not None:
                await conn.execute(
                    f"UPDATE {SCHEMA}.refresh_tokens SET revoked_at = now()"
                    " WHERE family_id = %s AND revoked_at IS NULL",
                    (seen[0],),
                )
                await conn.execute(
                    f"UPDATE {SCHEMA}.user_sessions SET revoked_at = coalesce(revoked_at, now()),"
                    " revoked_reason = coalesce(revoked_reason, 'refresh_token_reused') WHERE id = %s",
                    (seen[0],),
                )
                return RefreshOutcome.REUSED, None, None
            return RefreshOutcome.INVALID, None, None

    # --- plan ownership index --------------------------------------------------------------

    async def insert_plan(
        self,
        *,
        plan_id: str,
        user_id: str,
        idempotency_key: str | None,
        request_hash: str,
        request: dict[str, Any],
        command: str,
        title: str,
    ) -> tuple[PlanIndexRow, bool]:
        """Insert the row; on an Idempotency-Key the user already used, return that row.
        (row, True) when this call created it."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(PlanIndexRow))
            await cur.execute(
                f"INSERT INTO {SCHEMA}.plans_index"
                " (plan_id, user_id, idempotency_key, request_hash, request, command, title)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
                f" RETURNING {PLAN_COLUMNS}",
                (plan_id, user_id, idempotency_key, request_hash, Jsonb(request), command, title),
            )
            created = await cur.fetchone()
        if created is not None:
            return created, True
        assert idempotency_key is not None
        existing = await self.plan_by_idempotency_key(user_id, idempotency_key)
        assert existing is not None
        return existing, False

    async def plan_by_idempotency_key(self, user_id: str, key: str) -> PlanIndexRow | None:
        return await self._one_plan("user_id = %s AND idempotency_key = %s", (user_id, key))

    async def owned_plan(self, user_id: str, plan_id: str) -> PlanIndexRow | None:
        """The plan if `user_id` owns it and it is not deleted - the BOLA check."""
        return await self._one_plan(
            "plan_id = %s AND user_id = %s AND deleted_at IS NULL", (plan_id, user_id)
        )

    async def _one_plan(self, where: str, params: tuple[Any, ...]) -> PlanIndexRow | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(PlanIndexRow))
            await cur.execute(f"SELECT {PLAN_COLUMNS} FROM {SCHEMA}.plans_index WHERE {where}", params)
            return await cur.fetchone()

    async def mark_published(self, plan_id: str) -> None:
        await self._set(plan_id, "published_at = coalesce(published_at, now()), publish_error = NULL")

    async def mark_publish_failed(self, plan_id: str, error: str) -> None:
        await self._set(plan_id, "publish_error = %s", error[:500])

    async def mark_deleted(self, plan_id: str) -> None:
        await self._set(plan_id, "deleted_at = coalesce(deleted_at, now())")

    async def update_request(self, plan_id: str, request: dict[str, Any], title: str) -> None:
        await self._set(plan_id, "request = %s, title = %s", Jsonb(request), title)

    async def _set(self, plan_id: str, assignments: str, *params: Any) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                f"UPDATE {SCHEMA}.plans_index SET {assignments} WHERE plan_id = %s", (*params, plan_id)
            )

    async def list_plans(self, user_id: str, limit: int, offset: int) -> tuple[list[PlanIndexRow], int]:
        """The user's accepted (published), not deleted plans, newest first, and their count."""
        visible = "user_id = %s AND deleted_at IS NULL AND published_at IS NOT NULL"
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(PlanIndexRow))
            await cur.execute(
                f"SELECT {PLAN_COLUMNS} FROM {SCHEMA}.plans_index WHERE {visible}"
                " ORDER BY created_at DESC, plan_id LIMIT %s OFFSET %s",
                (user_id, limit, offset),
            )
            rows = await cur.fetchall()
            count = await conn.execute(
                f"SELECT count(*) FROM {SCHEMA}.plans_index WHERE {visible}", (user_id,)
            )
            total = await count.fetchone()
        return rows, int(total[0]) if total else 0

    async def owned_plan_ids(self, user_id: str, plan_ids: list[str]) -> set[str]:
        """Which of `plan_ids` the user owns and has not deleted."""
        if not plan_ids:
            return set()
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT plan_id FROM {SCHEMA}.plans_index"
                " WHERE user_id = %s AND plan_id = ANY(%s) AND deleted_at IS NULL",
                (user_id, plan_ids),
            )
            return {row[0] for row in await cur.fetchall()}
