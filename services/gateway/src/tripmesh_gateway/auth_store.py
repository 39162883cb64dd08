"""Postgres adapter for sessions, API keys and profile changes (the `accounts` schema).

A session is one login. Its refresh tokens are one family (`refresh_tokens.family_id` is the
session id) and its access tokens carry the id as `sid`, so revoking the session refuses
everything it issued, at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from tripmesh_gateway.store import SCHEMA, USER_COLUMNS, UsernameTaken, UserRecord

USER_COLUMNS_U = ", ".join(f"u.{column.strip()}" for column in USER_COLUMNS.split(","))


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    user_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


API_KEY_COLUMNS = "id, user_id, name, prefix, created_at, last_used_at, expires_at, revoked_at"


@dataclass(frozen=True)
class SessionRecord:
    id: str
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    user_agent: str | None


class AuthStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # --- sessions ----------------------------------------------------------------------

    async def open_session(
        self, session_id: str, user_id: str, expires_at: datetime, user_agent: str | None
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO {SCHEMA}.user_sessions (id, user_id, expires_at, user_agent)"
                " VALUES (%s, %s, %s, %s)",
                (session_id, user_id, expires_at, (user_agent or "")[:200] or None),
            )
            # Housekeeping at login: sessions long dead can never come back.
            await conn.execute(
                f"DELETE FROM {SCHEMA}.user_sessions WHERE user_id = %s"
                " AND expires_at < now() - interval '30 days'",
                (user_id,),
            )

    async def user_in_session(self, user_id: str, session_id: str) -> UserRecord | None:
        """The user, when `session_id` is one of its live sessions: one round trip per request."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(UserRecord))
            await cur.execute(
                f"SELECT {USER_COLUMNS_U} FROM {SCHEMA}.users u"
                f" JOIN {SCHEMA}.user_sessions s ON s.user_id = u.id"
                " WHERE u.id = %s AND s.id = %s AND s.revoked_at IS NULL AND s.expires_at > now()",
                (user_id, session_id),
            )
            return await cur.fetchone()

    async def session_live(self, session_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT 1 FROM {SCHEMA}.user_sessions"
                " WHERE id = %s AND revoked_at IS NULL AND expires_at > now()",
                (session_id,),
            )
            return await cur.fetchone() is not None

    async def touch_session(self, session_id: str, expires_at: datetime) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                f"UPDATE {SCHEMA}.user_sessions SET last_activity = now(), expires_at = %s WHERE id = %s",
                (expires_at, session_id),
            )

    async def revoke_sessions(
        self, user_id: str, reason: str, *, only: str | None = None, keep: str | None = None
    ) -> int:
        """Revoke one session (`only`) or all of the user's but `keep`, with their refresh
        tokens, in one transaction. Returns how many sessions were live."""
        where, params = "user_id = %s AND revoked_at IS NULL", [user_id]
        if only is not None:
            where += " AND id = %s"
            params.append(only)
        if keep is not None:
            where += " AND id <> %s"
            params.append(keep)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                f"UPDATE {SCHEMA}.user_sessions SET revoked_at = now(), revoked_reason = %s"
                f" WHERE {where} RETURNING id",
                (reason, *params),
            )
            revoked = [row[0] for row in await cur.fetchall()]
            if revoked:
                await conn.execute(
                    f"UPDATE {SCHEMA}.refresh_tokens SET revoked_at = now()"
                    " WHERE family_id = ANY(%s) AND revoked_at IS NULL",
                    (revoked,),
                )
        return len(revoked)

    async def live_sessions(self, user_id: str) -> list[SessionRecord]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(SessionRecord))
            await cur.execute(
                f"SELECT id, created_at, last_activity, expires_at, user_agent FROM {SCHEMA}.user_sessions"
                " WHERE user_id = %s AND revoked_at IS NULL AND expires_at > now()"
                " ORDER BY last_activity DESC",
                (user_id,),
            )
            return await cur.fetchall()

    async def revoke_family_session(self, family_id: str, reason: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                f"UPDATE {SCHEMA}.user_sessions SET revoked_at = now(), revoked_reason = %s"
                " WHERE id = %s AND revoked_at IS NULL",
                (reason, family_id),
            )

    # --- API keys ------------------------------------------------------------------------

    async def create_api_key(
        self, key_id: str, user_id: str, name: str, prefix: str, key_hash: bytes, expires_at: datetime | None
    ) -> ApiKeyRecord:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ApiKeyRecord))
            await cur.execute(
                f"INSERT INTO {SCHEMA}.api_keys (id, user_id, name, prefix, key_hash, expires_at)"
                f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {API_KEY_COLUMNS}",
                (key_id, user_id, name, prefix, key_hash, expires_at),
            )
            row = await cur.fetchone()
        assert row is not None
        return row

    async def count_live_api_keys(self, user_id: str) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT count(*) FROM {SCHEMA}.api_keys WHERE user_id = %s AND revoked_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > now())",
                (user_id,),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def list_api_keys(self, user_id: str) -> list[ApiKeyRecord]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ApiKeyRecord))
            await cur.execute(
                f"SELECT {API_KEY_COLUMNS} FROM {SCHEMA}.api_keys WHERE user_id = %s"
                " ORDER BY created_at DESC, id",
                (user_id,),
            )
            return await cur.fetchall()

    async def revoke_api_key(self, user_id: str, key_id: str) -> bool:
        """True when the user has such a key (revoking twice is fine)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE {SCHEMA}.api_keys SET revoked_at = coalesce(revoked_at, now())"
                " WHERE id = %s AND user_id = %s RETURNING id",
                (key_id, user_id),
            )
            return await cur.fetchone() is not None

    async def user_by_api_key(self, key_hash: bytes) -> tuple[UserRecord, str] | None:
        """(owner, key id) for a live key, marking it used; one round trip."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"WITH k AS (UPDATE {SCHEMA}.api_keys SET last_used_at = now()"
                " WHERE key_hash = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
                " RETURNING id, user_id)"
                f" SELECT k.id, {USER_COLUMNS_U} FROM k JOIN {SCHEMA}.users u ON u.id = k.user_id",
                (key_hash,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return UserRecord(*row[1:]), str(row[0])

    # --- profile and password ----------------------------------------------------------------

    async def update_profile(self, user_id: str, changes: dict[str, Any]) -> None:
        """Set the given columns (username, first_name, last_name, preferences)."""
        allowed = {"username", "first_name", "last_name", "preferences"}
        assert set(changes) <= allowed, set(changes) - allowed
        if not changes:
            return
        assignments = ", ".join(f"{column} = %s" for column in changes)
        values = [Jsonb(v) if column == "preferences" else v for column, v in changes.items()]
        try:
            async with self.pool.connection() as conn:
                await conn.execute(
                    f"UPDATE {SCHEMA}.users SET {assignments}, updated_at = now() WHERE id = %s",
                    (*values, user_id),
                )
        except psycopg.errors.UniqueViolation as exc:
            raise UsernameTaken(str(changes.get("username"))) from exc

    async def set_password(self, user_id: str, password_hash: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                f"UPDATE {SCHEMA}.users SET password_hash = %s, updated_at = now() WHERE id = %s",
                (password_hash, user_id),
            )
