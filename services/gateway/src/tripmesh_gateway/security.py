"""Passwords (argon2id) and tokens: HS256 access JWTs and opaque, single-use refresh tokens."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from tripmesh_contracts.ids import UnsafeTokenError, check_token

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "jti", "iss", "aud", "sid")
API_KEY_PREFIX = "tmk_"
"""Visible marker of an API key: secret scanners and humans can tell it from a JWT."""

# argon2-cffi's defaults are argon2id with RFC 9106's "low memory" profile.
_hasher = PasswordHasher()
# Verifying against a real hash when the e-mail is unknown keeps login timing the same for
# both cases, so the response time does not reveal which addresses have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _hash(password: str) -> str:
    return _hasher.hash(password)


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    # argon2 burns tens of ms of CPU on purpose: keep it off the event loop.
    return await asyncio.to_thread(_hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, stored_hash, password)


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


class InvalidToken(Exception):
    """Any reason a bearer token is not accepted; the message is safe to show."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    token_id: str
    session_id: str
    """The login (user_sessions.id) that issued the token; revoking it refuses the token."""
    expires_at: datetime


@dataclass(frozen=True)
class TokenSigner:
    key: bytes
    issuer: str
    audience: str
    access_ttl: timedelta
    leeway_seconds: int = 5
    """Clock skew tolerated between replicas."""

    def issue_access(self, user_id: str, session_id: str, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "sid": session_id,
            "jti": str(uuid.uuid4()),
            "iat": issued,
            "exp": issued + self.access_ttl,
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        try:
            # `algorithms` pins HS256: `alg: none` and algorithm-confusion tokens are refused.
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"invalid token: {type(exc).__name__}") from exc
        try:
            user_id = check_token(str(claims["sub"]))
            session_id = check_token(str(claims["sid"]))
        except UnsafeTokenError as exc:
            raise InvalidToken("invalid token subject or session") from exc
        return AccessClaims(
            user_id=user_id,
            token_id=str(claims["jti"]),
            session_id=session_id,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


def new_refresh_token() -> tuple[str, bytes]:
    """(token for the client, its SHA-256 for the database). Only the hash is stored: a
    database leak gives no usable refresh tokens. 256 random bits need no slow hash."""
    token = secrets.token_urlsafe(32)
    return token, refresh_token_hash(token)


def refresh_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_api_key() -> tuple[str, str, bytes]:
    """(key for the client, shown once; its display prefix; its SHA-256 for the database)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[: len(API_KEY_PREFIX) + 6], api_key_hash(key)


def api_key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def is_api_key(credential: str) -> bool:
    return credential.startswith(API_KEY_PREFIX)
