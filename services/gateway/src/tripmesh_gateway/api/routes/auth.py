"""/api/v1/auth: signup, login, refresh (rotation), me."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, status
from tripmesh_contracts import new_id
from tripmesh_kit.logging import get_logger

from tripmesh_gateway.api.deps import CurrentUser, RuntimeDep
from tripmesh_gateway.api.errors import ApiProblem, unauthorized, validation_problem
from tripmesh_gateway.api.schemas import LoginBody, RefreshBody, SignupBody, TokenResponse, UserOut
from tripmesh_gateway.domain import FieldError, password_problems
from tripmesh_gateway.runtime import Runtime
from tripmesh_gateway.security import (
    hash_password,
    needs_rehash,
    new_refresh_token,
    refresh_token_hash,
    verify_password,
)
from tripmesh_gateway.store import EmailTaken, RefreshOutcome, UserRecord

log = get_logger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid credentials (problem+json)"}
}


def user_out(user: UserRecord) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        username=user.username,
        subscription_tier=user.subscription_tier,
        is_active=user.is_active,
        role="admin" if user.is_admin else "user",
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


async def issue_tokens(
    runtime: Runtime, user_id: str, family_id: str | None = None, old_refresh_hash: bytes | None = None
) -> TokenResponse:
    """A new access token and refresh token. With `old_refresh_hash`, the old refresh token
    is used up in the same transaction (rotation); reuse of a used one revokes its family."""
    settings = runtime.settings
    refresh, refresh_hash = new_refresh_token()
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds)
    if old_refresh_hash is None:
        await runtime.store.add_refresh_token(
            refresh_hash, user_id, family_id or str(uuid.uuid4()), expires_at
        )
    else:
        outcome, rotated_user = await runtime.store.rotate_refresh_token(
            old_refresh_hash, refresh_hash, expires_at
        )
        if outcome is RefreshOutcome.REUSED:
            log.warning("refresh_token_reused", reason="family revoked")
        if outcome is not RefreshOutcome.ROTATED or rotated_user is None:
            raise unauthorized("refresh token invalid, expired or already used")
        user = await runtime.store.user_by_id(rotated_user)
        if user is None or not user.is_active:
            raise unauthorized("account not found or disabled")
        user_id = user.id
    return TokenResponse(
        access_token=runtime.signer.issue_access(user_id),
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_seconds,
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"description": "E-mail already registered"}},
)
async def signup(body: SignupBody, runtime: RuntimeDep) -> UserOut:
    problems = password_problems(body.password, body.email, body.username)
    if problems:
        raise validation_problem(problems, "the password does not meet the policy")
    password_hash = await hash_password(body.password)
    try:
        user = await runtime.store.create_user(new_id(), body.email, body.username, password_hash)
    except EmailTaken as exc:
        raise ApiProblem(
            409,
            "Conflict",
            "an account with this e-mail already exists",
            kind="email-taken",
            errors=[FieldError("email", "already registered")],
        ) from exc
    log.info("user_signed_up", user_id=user.id)
    return user_out(user)


@router.post("/login", response_model=TokenResponse, responses=PROBLEMS)
async def login(body: LoginBody, runtime: RuntimeDep) -> TokenResponse:
    user = await runtime.store.user_by_email(body.email)
    ok = await verify_password(user.password_hash if user else None, body.password)
    if user is None or not ok or not user.is_active:
        raise unauthorized("e-mail or password is wrong", invalid_token=False)
    new_hash = await hash_password(body.password) if needs_rehash(user.password_hash) else None
    await runtime.store.record_login(user.id, new_hash)
    return await issue_tokens(runtime, user.id)


@router.post("/refresh", response_model=TokenResponse, responses=PROBLEMS)
async def refresh(body: RefreshBody, runtime: RuntimeDep) -> TokenResponse:
    return await issue_tokens(runtime, "", old_refresh_hash=refresh_token_hash(body.refresh_token))


@router.get("/me", response_model=UserOut, responses=PROBLEMS)
async def me(user: CurrentUser) -> UserOut:
    return user_out(user)
