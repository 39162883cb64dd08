"""NATS JWT v2 (nats-io/jwt) encoding for the auth callout: ed25519 nkey signatures.

A NATS JWT is `base64url(header).base64url(claims).base64url(signature)`, unpadded; the
header is `{"typ":"JWT","alg":"ed25519-nkey"}` and the signature covers the first two parts.
`jti` is the unpadded base32 SHA-512/256 of the claims without it (nats-io/jwt's `hash()`).
Only what the callout needs is here: user claims and authorization responses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import nkeys

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
GLOBAL_ACCOUNT = "$G"
"""The account of a server configured without accounts: where the callout places users."""
NO_LIMIT = -1


class NatsJwtError(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Issuer:
    """An account nkey (seed `SA...`) that signs the callout's answers."""

    seed: str

    def __post_init__(self) -> None:
        try:
            public = self._keys().public_key.decode()
        except Exception as exc:  # nkeys raises its own error types and binascii errors
            raise NatsJwtError("not an nkey seed") from exc
        if not public.startswith("A"):
            raise NatsJwtError("the callout issuer must be an account nkey (seed SA..., public A...)")

    def _keys(self) -> nkeys.KeyPair:
        return nkeys.from_seed(self.seed.encode())

    @property
    def public_key(self) -> str:
        return str(self._keys().public_key.decode())

    def encode(self, subject: str, audience: str, nats: dict[str, Any], *, expires: int | None = None,
               name: str | None = None) -> str:  # fmt: skip
        claims: dict[str, Any] = {"aud": audience, "iat": int(time.time()), "iss": self.public_key}
        if expires is not None:
            claims["exp"] = expires
        if name is not None:
            claims["name"] = name
        claims["sub"] = subject
        claims["jti"] = (
            base64.b32encode(hashlib.new("sha512_256", _json(claims)).digest()).decode().rstrip("=")
        )
        claims["nats"] = {**nats, "version": 2}
        signing_input = f"{_b64(_json(HEADER))}.{_b64(_json(claims))}"
        signature = self._keys().sign(signing_input.encode())
        return f"{signing_input}.{_b64(signature)}"

    def user_jwt(
        self, user_nkey: str, name: str, expires: int, publish: list[str], subscribe: list[str]
    ) -> str:
        """A user of the global account limited to `publish` / `subscribe` until `expires`
        (the server disconnects it then)."""
        permissions = {
            "pub": {"allow": publish},
            "sub": {"allow": subscribe},
            "subs": NO_LIMIT,
            "data": NO_LIMIT,
            "payload": NO_LIMIT,
            "type": "user",
        }
        return self.encode(user_nkey, GLOBAL_ACCOUNT, permissions, expires=expires, name=name)

    def response(self, user_nkey: str, server_id: str, *, user_jwt: str = "", error: str = "") -> str:
        nats: dict[str, Any] = {"type": "authorization_response"}
        if user_jwt:
            nats["jwt"] = user_jwt
        if error:
            nats["error"] = error
        return self.encode(user_nkey, server_id, nats)


@dataclass(frozen=True)
class AuthRequest:
    """What the server asks: who connects (its connect options) and whom to answer."""

    user_nkey: str
    server_id: str
    token: str
    client_name: str


def decode_request(data: bytes) -> AuthRequest:
    """The claims of a `$SYS.REQ.USER.AUTH` request. Only the server can publish there (it
    denies the subject to every client of the account), so the signature is not checked."""
    try:
        _, payload, _ = data.decode().split(".")
        claims = json.loads(_unb64(payload))
        nats = claims["nats"]
        if claims.get("aud") != "nats-authorization-request" or nats.get("type") != "authorization_request":
            raise NatsJwtError("not an authorization request")
        connect = nats.get("connect_opts") or {}
        return AuthRequest(
            user_nkey=str(nats["user_nkey"]),
            server_id=str(nats["server_id"]["id"]),
            token=str(connect.get("auth_token") or connect.get("pass") or ""),
            client_name=str(connect.get("name") or ""),
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise NatsJwtError(f"undecodable authorization request: {exc}") from exc


def new_issuer_seed() -> str:
    """A fresh account seed (what `nsc` / `nk -gen account` make)."""
    import os

    return str(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT).decode())
