"""JWT verification matrix (every way a token can be wrong), refresh token hashing, argon2id."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from tripmesh_gateway.security import (
    InvalidToken,
    TokenSigner,
    hash_password,
    new_refresh_token,
    refresh_token_hash,
    verify_password,
)

KEY = b"k" * 64
SIGNER = TokenSigner(
    key=KEY, issuer="tripmesh-gateway", audience="tripmesh-api", access_ttl=timedelta(minutes=15)
)


def claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "iss": "tripmesh-gateway",
        "aud": "tripmesh-api",
        "sub": "user-1",
        "sid": "session-1",
        "jti": "j1",
        "iat": now,
        "exp": now + timedelta(hours=1),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).rstrip(b"=").decode()


def test_issued_token_verifies_with_every_required_claim() -> None:
    issued_at = datetime.now(UTC).replace(microsecond=0)
    token = SIGNER.issue_access("user-1", "session-1", now=issued_at)
    decoded = jwt.decode(token, KEY, algorithms=["HS256"], audience="tripmesh-api")
    assert set(decoded) == {"iss", "aud", "sub", "sid", "jti", "iat", "exp"}
    assert decoded["exp"] - decoded["iat"] == 15 * 60
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    verified = SIGNER.verify(token)
    assert verified.user_id == "user-1"
    assert verified.session_id == "session-1"
    assert verified.expires_at == issued_at + timedelta(minutes=15)


def test_each_access_token_has_its_own_id() -> None:
    first, second = SIGNER.issue_access("u", "s"), SIGNER.issue_access("u", "s")
    assert SIGNER.verify(first).token_id != SIGNER.verify(second).token_id


def bad_token(name: str) -> str:
    """Built when the test runs, so only the intended defect can make it invalid."""
    now = datetime.now(UTC)
    tokens = {
        "alg-none": b64({"alg": "none", "typ": "JWT"})
        + "."
        + b64(claims(iat=now.timestamp(), exp=now.timestamp() + 3600))
        + ".",
        "wrong-signature": jwt.encode(claims(), b"x" * 64, algorithm="HS256"),
        "other-hmac-alg": jwt.encode(claims(), KEY, algorithm="HS512"),
        "wrong-audience": jwt.encode(claims(aud="someone-else"), KEY, algorithm="HS256"),
        "wrong-issuer": jwt.encode(claims(iss="evil"), KEY, algorithm="HS256"),
        "expired": jwt.encode(claims(exp=now - timedelta(minutes=1)), KEY, algorithm="HS256"),
        "no-exp": jwt.encode(claims(exp=None), KEY, algorithm="HS256"),
        "no-sub": jwt.encode(claims(sub=None), KEY, algorithm="HS256"),
        "no-jti": jwt.encode(claims(jti=None), KEY, algorithm="HS256"),
        "no-aud": jwt.encode(claims(aud=None), KEY, algorithm="HS256"),
        "no-sid": jwt.encode(claims(sid=None), KEY, algorithm="HS256"),
        "unsafe-session": jwt.encode(claims(sid="s.*"), KEY, algorithm="HS256"),
        "unsafe-subject": jwt.encode(claims(sub="user.>"), KEY, algorithm="HS256"),
        "malformed": "not-a-jwt",
        "truncated": SIGNER.issue_access("user-1", "s")[:-10],
        "empty": "",
    }
    return tokens[name]


BAD_TOKEN_NAMES = [
    "alg-none",
    "wrong-signature",
    "other-hmac-alg",
    "wrong-audience",
    "wrong-issuer",
    "expired",
    "no-exp",
    "no-sub",
    "no-jti",
    "no-aud",
    "no-sid",
    "unsafe-session",
    "unsafe-subject",
    "malformed",
    "truncated",
    "empty",
]


def test_the_good_twin_of_the_bad_tokens_is_accepted() -> None:
    assert SIGNER.verify(jwt.encode(claims(), KEY, algorithm="HS256")).user_id == "user-1"


@pytest.mark.parametrize("name", BAD_TOKEN_NAMES)
def test_bad_tokens_are_refused(name: str) -> None:
    with pytest.raises(InvalidToken):
        SIGNER.verify(bad_token(name))


def test_expired_says_so() -> None:
    with pytest.raises(InvalidToken, match="expired"):
        SIGNER.verify(bad_token("expired"))


def test_refresh_tokens_are_random_and_stored_hashed() -> None:
    token, stored = new_refresh_token()
    other, _ = new_refresh_token()
    assert token != other
    assert len(token) >= 40
    assert stored == refresh_token_hash(token)
    assert token.encode() not in stored


async def test_passwords_hash_with_argon2id_and_verify() -> None:
    stored = await hash_password("a-long-enough-passphrase")
    assert stored.startswith("$argon2id$")
    assert await verify_password(stored, "a-long-enough-passphrase")
    assert not await verify_password(stored, "a-long-enough-passphrasE")
    assert not await verify_password(None, "a-long-enough-passphrase")
    assert not await verify_password("not-a-hash", "whatever")
