"""NATS JWT encoding for the auth callout (pure logic; the server accepting it is tested in
tests/integration/test_nats_credentials.py)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import nkeys
import pytest
from tripmesh_gateway.nats_credentials import (
    InvalidNatsCredential,
    NatsCredentialIssuer,
    client_permissions,
)
from tripmesh_gateway.nats_jwt import Issuer, NatsJwtError, decode_request, new_issuer_seed


def _part(token: str, index: int) -> dict[str, object]:
    chunk = token.split(".")[index]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(chunk + "=" * (-len(chunk) % 4)))
    return decoded


def test_user_jwt_is_signed_by_the_issuer_account_key() -> None:
    issuer = Issuer(new_issuer_seed())
    token = issuer.user_jwt("UUSER", "u1", 2_000_000_000, ["a.>"], ["b.>"])
    assert _part(token, 0) == {"typ": "JWT", "alg": "ed25519-nkey"}
    claims = _part(token, 1)
    assert claims["iss"] == issuer.public_key and issuer.public_key.startswith("A")
    assert claims["aud"] == "$G" and claims["sub"] == "UUSER" and claims["exp"] == 2_000_000_000
    nats = claims["nats"]
    assert isinstance(nats, dict)
    assert nats["pub"] == {"allow": ["a.>"]} and nats["sub"] == {"allow": ["b.>"]}
    assert nats["type"] == "user" and nats["version"] == 2 and nats["subs"] == -1
    signing_input, _, signature = token.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert nkeys.from_seed(issuer.seed.encode()).verify(signing_input.encode(), raw)


def test_only_account_seeds_may_issue() -> None:
    user_seed = nkeys.encode_seed(b"\x01" * 32, nkeys.PREFIX_BYTE_USER).decode()
    with pytest.raises(NatsJwtError):
        Issuer(user_seed)
    with pytest.raises(NatsJwtError):
        Issuer("not a seed")


def test_decode_request_reads_the_token_and_whom_to_answer() -> None:
    claims = {
        "aud": "nats-authorization-request",
        "nats": {
            "type": "authorization_request",
            "user_nkey": "UABC",
            "server_id": {"id": "NSERVER"},
            "connect_opts": {"auth_token": "tok", "name": "cli"},
        },
    }
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    request = decode_request(f"e30.{payload}.sig".encode())
    assert (request.user_nkey, request.server_id, request.token) == ("UABC", "NSERVER", "tok")
    with pytest.raises(NatsJwtError):
        decode_request(b"garbage")


def test_credentials_are_bound_to_the_user_and_expire() -> None:
    issuer = NatsCredentialIssuer(b"k" * 32, Issuer(new_issuer_seed()), "nats://x", timedelta(minutes=5))
    credential = issuer.issue("user-1")
    assert issuer.verify(credential.token)[0] == "user-1"
    with pytest.raises(InvalidNatsCredential, match="expired"):
        issuer.verify(issuer.issue("user-1", datetime.now(UTC) - timedelta(hours=1)).token)
    other = NatsCredentialIssuer(b"o" * 32, issuer.issuer, "nats://x", timedelta(minutes=5))
    with pytest.raises(InvalidNatsCredential):
        other.verify(credential.token)


def test_permissions_name_only_the_users_subjects() -> None:
    permissions = client_permissions("u1")
    for subject in (*permissions.publish, *permissions.subscribe):
        assert ".u1." in subject or subject.startswith(
            ("$JS.API.CONSUMER.MSG.NEXT.", "$JS.ACK.", "_INBOX.u1")
        )
    assert ">" not in permissions.subscribe and "_INBOX.>" not in permissions.subscribe
