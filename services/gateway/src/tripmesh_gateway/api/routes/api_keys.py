"""/api/v1/auth/api-keys: keys for machine clients. A key acts as its owner (same plans, same
costs, its own rate limit); it is shown once at creation and only its SHA-256 is stored.
Managing keys needs a login session: a key cannot mint or revoke keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Response, status
from tripmesh_contracts import new_id
from tripmesh_contracts.ids import UnsafeTokenError, check_token
from tripmesh_kit.logging import get_logger

from tripmesh_gateway.api.deps import CurrentSession, RuntimeDep
from tripmesh_gateway.api.errors import ApiProblem, not_found
from tripmesh_gateway.api.schemas import ApiKeyCreateBody, ApiKeyCreated, ApiKeyList, ApiKeyOut
from tripmesh_gateway.auth_store import ApiKeyRecord
from tripmesh_gateway.security import new_api_key

log = get_logger(__name__)
router = APIRouter(prefix="/api-keys", tags=["auth"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid credentials (problem+json)"},
    403: {"description": "Needs a login session, not an API key"},
}


def key_out(record: ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(
        id=record.id,
        name=record.name,
        prefix=record.prefix,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses={**PROBLEMS, 409: {"description": "Too many live keys"}},
)
async def create_api_key(
    body: ApiKeyCreateBody, principal: CurrentSession, runtime: RuntimeDep
) -> ApiKeyCreated:
    """A new key; the response is the only time `key` is shown."""
    user = principal.user
    cap = runtime.settings.max_api_keys_per_user
    if cap and await runtime.auth.count_live_api_keys(user.id) >= cap:
        raise ApiProblem(
            409, "Conflict", f"at most {cap} live API keys; revoke one first", kind="api-key-limit", limit=cap
        )
    key, prefix, key_hash = new_api_key()
    expires_at = (
        datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days is not None else None
    )
    record = await runtime.auth.create_api_key(new_id(), user.id, body.name, prefix, key_hash, expires_at)
    log.info("api_key_created", user_id=user.id, api_key_id=record.id)
    return ApiKeyCreated(**key_out(record).model_dump(), key=key)


@router.get("", response_model=ApiKeyList, responses=PROBLEMS)
async def list_api_keys(principal: CurrentSession, runtime: RuntimeDep) -> ApiKeyList:
    """Your keys, newest first, revoked ones included (never the keys themselves)."""
    return ApiKeyList(items=[key_out(r) for r in await runtime.auth.list_api_keys(principal.user.id)])


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, 404: {"description": "No such key among yours"}},
)
async def revoke_api_key(key_id: str, principal: CurrentSession, runtime: RuntimeDep) -> Response:
    """Revoke a key: it is refused from the next request on."""
    try:
        check_token(key_id)
    except UnsafeTokenError as exc:
        raise not_found("API key") from exc
    if not await runtime.auth.revoke_api_key(principal.user.id, key_id):
        raise not_found("API key")
    log.info("api_key_revoked", user_id=principal.user.id, api_key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
