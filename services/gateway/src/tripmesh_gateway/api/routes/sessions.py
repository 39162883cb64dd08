"""/api/v1/auth/sessions: the caller's live login sessions (the seeds' user_sessions), and
revoking one - e.g. a lost device - which refuses its access and refresh tokens at once.
Managing sessions needs a login session: an API key cannot list or end them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from tripmesh_contracts.ids import UnsafeTokenError, check_token
from tripmesh_kit.logging import get_logger

from tripmesh_gateway.api.deps import CurrentSession, RuntimeDep
from tripmesh_gateway.api.errors import not_found

log = get_logger(__name__)
router = APIRouter(prefix="/sessions", tags=["auth"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid credentials (problem+json)"},
    403: {"description": "Needs a login session, not an API key"},
}


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    user_agent: str | None = None
    current: bool
    """The session this request was made with."""


class SessionList(BaseModel):
    items: list[SessionOut]


@router.get("", response_model=SessionList, responses=PROBLEMS)
async def list_sessions(principal: CurrentSession, runtime: RuntimeDep) -> SessionList:
    """Your live sessions, most recently active first."""
    records = await runtime.auth.live_sessions(principal.user.id)
    return SessionList(
        items=[
            SessionOut(
                id=r.id,
                created_at=r.created_at,
                last_activity=r.last_activity,
                expires_at=r.expires_at,
                user_agent=r.user_agent,
                current=r.id == principal.session_id,
            )
            for r in records
        ]
    )


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, 404: {"description": "No such live session among yours"}},
)
async def revoke_session(session_id: str, principal: CurrentSession, runtime: RuntimeDep) -> Response:
    """End one of your sessions: its tokens are refused from the next request on."""
    try:
        check_token(session_id)
    except UnsafeTokenError as exc:
        raise not_found("session") from exc
    if not await runtime.auth.revoke_sessions(principal.user.id, "revoked_by_user", only=session_id):
        raise not_found("session")
    log.info("session_revoked", user_id=principal.user.id, session_id=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
