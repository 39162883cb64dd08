"""Direct NATS access for clients (ARCHITECTURE §6b, issue #8), through NATS auth callout.

`POST /api/v1/auth/nats-credentials` hands a user a short-lived token (an HS256 JWT with its
own audience, so it is no API access token and vice versa). The client connects to NATS with
it; the server, configured with `auth_callout` (issuer = our account nkey, auth_users = the
services), asks `$SYS.REQ.USER.AUTH`; `CalloutResponder` (in every gateway replica, one
queue group) checks the token and the account, then answers with a user JWT signed by the
issuer, scoped by the broker to that user's subjects and valid until the token expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from tripmesh_contracts.ids import UnsafeTokenError, check_token
from tripmesh_contracts.streams import PLAN_EVENTS
from tripmesh_kit.logging import get_logger

from tripmesh_gateway.nats_jwt import AuthRequest, Issuer, NatsJwtError, decode_request

log = get_logger(__name__)

CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
CALLOUT_QUEUE = "gateway-auth-callout"
AUDIENCE = "tripmesh-nats"
ALGORITHM = "HS256"


def inbox_prefix(user_id: str) -> str:
    """A user's private inbox space: replies and JetStream answers only it can receive
    (services keep `_INBOX.<nuid>`; a user id is a UUID, never a nuid)."""
    return f"_INBOX.{check_token(user_id)}"


@dataclass(frozen=True)
class ClientPermissions:
    publish: list[str]
    subscribe: list[str]


def client_permissions(user_id: str) -> ClientPermissions:
    """What a user's connection may do: read its plan events and account alerts, live or
    through a named consumer on PLAN_EVENTS filtered to them (the server refuses a create
    whose body filter differs from the filter in the subject); nothing else."""
    stream = PLAN_EVENTS.name
    # checked here too, not only in verify(): a `>` or `.` in the id would widen the grant
    # to other users' subjects (issue #12, test 10)
    user = check_token(user_id)
    own = [f"plans.evt.{user}.>", f"users.evt.{user}.>"]
    return ClientPermissions(
        publish=[
            *(f"$JS.API.CONSUMER.CREATE.{stream}.*.{subject}" for subject in own),
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
            f"$JS.ACK.{stream}.>",
        ],
        subscribe=[*own, f"{inbox_prefix(user_id)}.>"],
    )


class InvalidNatsCredential(Exception):
    pass


@dataclass(frozen=True)
class NatsCredential:
    token: str
    user_id: str
    expires_at: datetime


@dataclass(frozen=True)
class NatsCredentialIssuer:
    """Issues and checks the tokens; `issuer` signs the callout's answers."""

    key: bytes
    issuer: Issuer
    client_url: str
    ttl: timedelta
    token_issuer: str = "tripmesh-gateway"

    def issue(self, user_id: str, now: datetime | None = None) -> NatsCredential:
        issued = now or datetime.now(UTC)
        expires = issued + self.ttl
        claims = {
            "iss": self.token_issuer,
            "aud": AUDIENCE,
            "sub": user_id,
            "jti": str(uuid.uuid4()),
            "iat": issued,
            "exp": expires,
        }
        token = jwt.encode(claims, self.key, algorithm=ALGORITHM)
        return NatsCredential(token=token, user_id=user_id, expires_at=expires.replace(microsecond=0))

    def verify(self, token: str) -> tuple[str, int]:
        """(user id, expiry as a unix time) of a valid, unexpired token."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.token_issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
            return check_token(str(claims["sub"])), int(claims["exp"])
        except jwt.ExpiredSignatureError as exc:
            raise InvalidNatsCredential("credential expired") from exc
        except (jwt.InvalidTokenError, UnsafeTokenError) as exc:
            raise InvalidNatsCredential(f"invalid credential: {type(exc).__name__}") from exc


UserIsActive = Callable[[str], Awaitable[bool]]


class CalloutResponder:
    """Answers the server's authorization requests for clients that are not services."""

    def __init__(self, credentials: NatsCredentialIssuer, user_is_active: UserIsActive) -> None:
        self.credentials = credentials
        self.user_is_active = user_is_active
        self._sub: Subscription | None = None

    async def start(self, nc: NatsClient) -> None:
        self._sub = await nc.subscribe(CALLOUT_SUBJECT, queue=CALLOUT_QUEUE, cb=self._on_request)
        log.info("nats_auth_callout_started", issuer=self.credentials.issuer.public_key)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def answer(self, data: bytes) -> bytes:
        """The signed response to one request: a scoped user JWT, or an error (refused)."""
        request = decode_request(data)
        issuer = self.credentials.issuer
        try:
            user_id, expires = self.credentials.verify(request.token)
            if not await self.user_is_active(user_id):
                raise InvalidNatsCredential("account unknown or disabled")
        except InvalidNatsCredential as exc:
            log.info("nats_auth_refused", reason=str(exc), client=request.client_name)
            return issuer.response(request.user_nkey, request.server_id, error=str(exc)).encode()
        return self._grant(request, user_id, expires).encode()

    def _grant(self, request: AuthRequest, user_id: str, expires: int) -> str:
        permissions = client_permissions(user_id)
        issuer = self.credentials.issuer
        user_jwt = issuer.user_jwt(
            request.user_nkey, user_id, expires, permissions.publish, permissions.subscribe
        )
        log.info("nats_auth_granted", user_id=user_id, client=request.client_name)
        return issuer.response(request.user_nkey, request.server_id, user_jwt=user_jwt)

    async def _on_request(self, msg: Msg) -> None:
        try:
            await msg.respond(await self.answer(msg.data))
        except NatsJwtError as exc:
            log.warning("nats_auth_request_undecodable", error=str(exc))
        except Exception as exc:  # never let one request kill the subscription; the client times out
            log.error("nats_auth_callout_failed", error=repr(exc))
