"""/api/v1/auth: signup, login, refresh (rotation), logout, me (read / update), password,
and API keys (api_keys.py). Sessions: auth_store.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from tripmesh_contracts import new_id
from tripmesh_kit.logging import get_logger

from tripmesh_gateway.api.deps import AnonymousRateLimit, CurrentSession, CurrentUser, RuntimeDep
from tripmesh_gateway.api.errors import ApiProblem, unauthorized, validation_problem
from tripmesh_gateway.api.routes import api_keys, sessions
from tripmesh_gateway.api.schemas import (
    LoginBody,
    PasswordChangeBody,
    ProfileUpdateBody,
    RefreshBody,
    SignupBody,
    TokenResponse,
    UserOut,
)
from tripmesh_gateway.domain import FieldError, password_problems
from tripmesh_gateway.runtime import Runtime
from tripmesh_gateway.security import (
    hash_password,
    needs_rehash,
    new_refresh_token,
    refresh_token_hash,
    verify_password,
)
from tripmesh_gateway.store import EmailTaken, RefreshOutcome, UsernameTaken, UserRecord

log = get_logger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid credentials (problem+json)"}
}
LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests from this address (problem+json, Retry-After)"}
}
SESSION_ONLY: dict[str, Any] = {"description": "Needs a login session, not an API key"}


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
        first_name=user.first_name,
        last_name=user.last_name,
        preferences=user.preferences,
    )


def username_taken() -> ApiProblem:
    return ApiProblem(
        409,
        "Conflict",
        "this username is taken",
        kind="username-taken",
        errors=[FieldError("username", "already taken")],
    )


async def open_session(runtime: Runtime, user_id: str, user_agent: str | None) -> TokenResponse:
    """A new login: a session, its first refresh token and an access token naming it."""
    settings = runtime.settings
    session_id = str(uuid.uuid4())
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds)
    await runtime.auth.open_session(session_id, user_id, expires_at, user_agent)
    refresh, refresh_hash = new_refresh_token()
    await runtime.store.add_refresh_token(refresh_hash, user_id, session_id, expires_at)
    return TokenResponse(
        access_token=runtime.signer.issue_access(user_id, session_id),
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_seconds,
    )


async def rotate(runtime: Runtime, old_refresh_hash: bytes) -> TokenResponse:
    """Use the refresh token up and hand out the next one of its session (rotation); a
    token used before revokes the whole session (someone else holds a copy)."""
    settings = runtime.settings
    refresh, refresh_hash = new_refresh_token()
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds)
    outcome, user_id, session_id = await runtime.store.rotate_refresh_token(
        old_refresh_hash, refresh_hash, expires_at
    )
    if outcome is RefreshOutcome.REUSED:
        log.warning("refresh_token_reused", reason="session revoked")
    if outcome is not RefreshOutcome.ROTATED or user_id is None or session_id is None:
        raise unauthorized("refresh token invalid, expired or already used")
    user = await runtime.store.user_by_id(user_id)
    if user is None or not user.is_active:
        raise unauthorized("account not found or disabled")
    return TokenResponse(
        access_token=runtime.signer.issue_access(user.id, session_id),
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_seconds,
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"description": "E-mail or username already registered"}, **LIMITED},
    dependencies=[AnonymousRateLimit],
)
async def signup(body: SignupBody, runtime: RuntimeDep) -> UserOut:
    problems = password_problems(body.password, body.email, body.username)
    if problems:
        raise validation_problem(problems, "the password does not meet the policy")
    password_hash = await hash_password(body.password)
    try:
        user = await runtime.store.create_user(new_id(), body.email, body.username, password_hash)
    except UsernameTaken as exc:
        raise username_taken() from exc
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


@router.post(
    "/login",
    response_model=TokenResponse,
    responses={**PROBLEMS, **LIMITED},
    dependencies=[AnonymousRateLimit],
)
async def login(body: LoginBody, runtime: RuntimeDep, request: Request) -> TokenResponse:
    user = await runtime.store.user_by_email(body.email)
    ok = await verify_password(user.password_hash if user else None, body.password)
    if user is None or not ok or not user.is_active:
        raise unauthorized("e-mail or password is wrong", invalid_token=False)
    new_hash = await hash_password(body.password) if needs_rehash(user.password_hash) else None
    await runtime.store.record_login(user.id, new_hash)
    return await open_session(runtime, user.id, request.headers.get("user-agent"))


@router.post(
    "/refresh",
    response_model=TokenResponse,
    responses={**PROBLEMS, **LIMITED},
    dependencies=[AnonymousRateLimit],
)
async def refresh(body: RefreshBody, runtime: RuntimeDep) -> TokenResponse:
    return await rotate(runtime, refresh_token_hash(body.refresh_token))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses={**PROBLEMS, 403: SESSION_ONLY})
async def logout(
    principal: CurrentSession,
    runtime: RuntimeDep,
    everywhere: Annotated[bool, Query(description="Revoke every session of the account")] = False,
) -> Response:
    """Revoke this session (its refresh tokens and access tokens stop working at once), or
    with `everywhere=true` every session of the account. API keys are revoked on their own."""
    only = None if everywhere else principal.session_id
    await runtime.auth.revoke_sessions(principal.user.id, "logout", only=only)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserOut, responses=PROBLEMS)
async def me(user: CurrentUser) -> UserOut:
    return user_out(user)


@router.patch("/me", response_model=UserOut, responses={**PROBLEMS, 409: {"description": "Username taken"}})
async def update_me(body: ProfileUpdateBody, user: CurrentUser, runtime: RuntimeDep) -> UserOut:
    """Change the profile: username, first_name, last_name, preferences. E-mail and role
    are not changed here."""
    changes = body.model_dump(exclude_unset=True)
    if "username" in changes and changes["username"] is None:
        raise validation_problem([FieldError("username", "must not be null")])
    if "preferences" in changes and changes["preferences"] is None:
        changes["preferences"] = {}
    try:
        await runtime.auth.update_profile(user.id, changes)
    except UsernameTaken as exc:
        raise username_taken() from exc
    updated = await runtime.store.user_by_id(user.id)
    assert updated is not None
    return user_out(updated)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, 403: SESSION_ONLY, 422: {"description": "Policy or current password"}},
)
async def change_password(
    body: PasswordChangeBody, principal: CurrentSession, runtime: RuntimeDep
) -> Response:
    """Change the password: every other session is revoked (this one stays signed in)."""
    user = principal.user
    if not await verify_password(user.password_hash, body.current_password):
        raise validation_problem([FieldError("current_password", "is wrong")])
    problems = password_problems(body.new_password, user.email, user.username)
    if problems:
        raise validation_problem(
            [FieldError("new_password", p.message) for p in problems], "the password does not meet the policy"
        )
    await runtime.auth.set_password(user.id, await hash_password(body.new_password))
    revoked = await runtime.auth.revoke_sessions(user.id, "password_changed", keep=principal.session_id)
    log.info("password_changed", user_id=user.id, sessions_revoked=revoked)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


router.include_router(api_keys.router)
router.include_router(sessions.router)
