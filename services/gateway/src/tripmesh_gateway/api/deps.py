"""FastAPI dependencies, as `Annotated` aliases the routes put in their signatures.

The caller's identity always comes from the bearer token; a plan id in a path is only
trusted after `owned_plan` found it in the caller's own plans_index rows (BOLA defence)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from tripmesh_contracts.ids import UnsafeTokenError, check_token
from tripmesh_kit.logging import bind_context

from tripmesh_gateway.api.errors import forbidden, not_found, unauthorized
from tripmesh_gateway.runtime import Runtime
from tripmesh_gateway.security import InvalidToken, api_key_hash, is_api_key
from tripmesh_gateway.store import PlanIndexRow, UserRecord


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/login")


@dataclass(frozen=True)
class Principal:
    """Who is calling and with what: a login session (access JWT) or an API key. Both act as
    the user, with the same scoping; some account routes need a session (`CurrentSession`)."""

    user: UserRecord
    session_id: str | None = None
    api_key_id: str | None = None


async def current_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate (every failure is a 401 problem), then count the request against the
    caller's rate limit (429). Cached per request by FastAPI, so this runs once."""
    if credentials is None or not credentials.credentials.strip():
        raise unauthorized("missing bearer token", invalid_token=False)
    credential = credentials.credentials.strip()
    settings = runtime.settings
    if is_api_key(credential):
        found = await runtime.auth.user_by_api_key(api_key_hash(credential))
        if found is None or not found[0].is_active:
            raise unauthorized("API key unknown, revoked or expired")
        principal = Principal(user=found[0], api_key_id=found[1])
        await runtime.limiter.enforce(
            f"key:{principal.api_key_id}", settings.api_key_rate_limit_per_hour, "this API key"
        )
    else:
        try:
            claims = runtime.signer.verify(credential)
        except InvalidToken as exc:
            raise unauthorized(str(exc)) from exc
        user = await runtime.auth.user_in_session(claims.user_id, claims.session_id)
        if user is None or not user.is_active:
            raise unauthorized("session revoked or expired, or account disabled")
        principal = Principal(user=user, session_id=claims.session_id)
        await runtime.limiter.enforce(f"user:{user.id}", settings.rate_limit_per_hour, "this user")
    request.state.principal = principal
    # every later line of this request names its user (the request runs in its own task)
    bind_context(user_id=principal.user.id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user(principal: CurrentPrincipal) -> UserRecord:
    return principal.user


async def current_session(principal: CurrentPrincipal) -> Principal:
    """Account management (API keys, password, logout) needs a login, not an API key: a
    leaked key must not be able to mint more keys or lock the owner out."""
    if principal.session_id is None:
        raise forbidden("this needs a login session (an access token), not an API key")
    return principal


CurrentSession = Annotated[Principal, Depends(current_session)]


async def anonymous_rate_limit(request: Request, runtime: RuntimeDep) -> None:
    """Per client IP, for the routes a caller uses before it has a token (signup, login,
    refresh). Behind a proxy, run uvicorn with --proxy-headers so the client's IP is seen."""
    ip = request.client.host if request.client else "unknown"
    await runtime.limiter.enforce(
        f"ip:{ip}", runtime.settings.anonymous_rate_limit_per_hour, "this address (anonymous)"
    )


AnonymousRateLimit = Depends(anonymous_rate_limit)


CurrentUser = Annotated[UserRecord, Depends(current_user)]


async def current_admin(user: CurrentUser) -> UserRecord:
    if not user.is_admin:
        raise forbidden("this needs the admin role")
    return user


CurrentAdmin = Annotated[UserRecord, Depends(current_admin)]


async def account_in_question(
    user: CurrentUser,
    runtime: RuntimeDep,
    user_id: Annotated[
        str | None, Query(max_length=64, description="Another user's id (admins only); default: you")
    ] = None,
) -> UserRecord:
    """The account a request is about: the caller's own, or with `?user_id=` (an admin's
    privilege: 403 for anyone else) that user's, 404 when there is no such user."""
    if user_id is None or user_id == user.id:
        return user
    if not user.is_admin:
        raise forbidden("only an admin may act on another user's account (user_id)")
    try:
        check_token(user_id)
    except UnsafeTokenError as exc:
        raise not_found("user") from exc
    target = await runtime.store.user_by_id(user_id)
    if target is None:
        raise not_found("user")
    return target


AccountInQuestion = Annotated[UserRecord, Depends(account_in_question)]


async def owned_plan(plan_id: str, user: CurrentUser, runtime: RuntimeDep) -> PlanIndexRow:
    """The caller's plan, or 404 - also when it exists but is someone else's."""
    try:
        check_token(plan_id)
    except UnsafeTokenError as exc:
        raise not_found() from exc
    row = await runtime.store.owned_plan(user.id, plan_id)
    if row is None:
        raise not_found()
    return row


OwnedPlan = Annotated[PlanIndexRow, Depends(owned_plan)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retry-safe creates: the same key and body return the same plan",
    ),
]

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)]

__all__ = [
    "AccountInQuestion",
    "CurrentAdmin",
    "CurrentUser",
    "IdempotencyKey",
    "LastEventId",
    "OwnedPlan",
    "RuntimeDep",
    "account_in_question",
    "current_admin",
    "current_user",
    "get_runtime",
    "owned_plan",
]
