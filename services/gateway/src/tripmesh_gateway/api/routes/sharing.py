"""Plan sharing: the owner creates, lists and revokes shares (`/plans/{id}/share[s]`); a link
token reads the plan and its versions without an account (`/shared/{token}...`).

Only the owner manages shares: every route here but the token reads takes `OwnedPlan`, so a
reader (or anyone else) gets the same 404 as for a plan that does not exist."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status
from tripmesh_contracts.ids import UnsafeTokenError, check_token
from tripmesh_contracts.rpc import PlanVersionView

from tripmesh_gateway.api.deps import CurrentUser, OwnedPlan, RuntimeDep
from tripmesh_gateway.api.errors import not_found, validation_problem
from tripmesh_gateway.api.plan_access import (
    LinkedPlan,
    plan_version,
    plan_versions,
    share_store,
    shared_plan,
)
from tripmesh_gateway.api.schemas import VersionList
from tripmesh_gateway.api.sharing_schemas import (
    ShareCreateBody,
    ShareCreated,
    SharedPlanOut,
    SharedWith,
    ShareList,
    ShareOut,
)
from tripmesh_gateway.domain import FieldError
from tripmesh_gateway.shares import AmbiguousUser, ShareRecord, new_link_token

router = APIRouter(tags=["sharing"])

OWNER_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    404: {"description": "No such plan (or share) among yours"},
    422: {"description": "Invalid request; `errors` names each field"},
}
TOKEN_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown, revoked or expired link token, or the plan was deleted"},
    503: {"description": "The planner did not answer"},
}
SHARED_PREFIX = "/api/v1/shared/"


def share_out(share: ShareRecord) -> dict[str, Any]:
    with_ = None
    if share.shared_with_user_id is not None:
        with_ = SharedWith(
            id=share.shared_with_user_id,
            username=share.shared_with_username or "",
            email=share.shared_with_email or "",
        )
    return {
        "id": share.id,
        "plan_id": share.plan_id,
        "type": share.share_type,
        "shared_with": with_,
        "searchable": share.searchable,
        "created_at": share.created_at,
        "expires_at": share.expires_at,
        "expired": share.expired,
        "access_count": share.access_count,
        "last_accessed_at": share.last_accessed_at,
    }


@router.post(
    "/plans/{plan_id}/share",
    status_code=status.HTTP_201_CREATED,
    response_model=ShareCreated,
    responses=OWNER_PROBLEMS,
)
async def create_share(
    body: ShareCreateBody, row: OwnedPlan, user: CurrentUser, runtime: RuntimeDep, response: Response
) -> ShareCreated:
    """Share the plan read-only: a link token (in this response only) or a named user. Sharing
    again with the same user updates that share's `expires_at` and `searchable`."""
    if body.expires_at is not None:
        if body.expires_at.tzinfo is None:
            raise validation_problem([FieldError("expires_at", "needs a time zone (e.g. Z)")])
        if body.expires_at <= datetime.now(UTC):
            raise validation_problem([FieldError("expires_at", "must be in the future")])
    shares = share_store(runtime)
    token: str | None = None
    if body.type == "link":
        token = new_link_token()
        share_id = await shares.create_link(row.plan_id, user.id, token, body.expires_at)
    else:
        assert body.user is not None
        try:
            reader = await shares.find_user(body.user.strip())
        except AmbiguousUser:
            raise validation_problem(
                [FieldError("user", "several accounts have this username: use the e-mail or id")]
            ) from None
        if reader is None:
            raise validation_problem([FieldError("user", "no such user")])
        if reader.id == user.id:
            raise validation_problem([FieldError("user", "this is your own plan")])
        share_id, _ = await shares.share_with_user(
            row.plan_id, user.id, reader.id, body.expires_at, body.searchable
        )
    share = await shares.get(row.plan_id, share_id)
    assert share is not None
    response.headers["Location"] = f"/api/v1/plans/{row.plan_id}/shares/{share_id}"
    url = SHARED_PREFIX + token if token else None
    return ShareCreated(**share_out(share), token=token, url=url)


@router.get("/plans/{plan_id}/shares", response_model=ShareList, responses=OWNER_PROBLEMS)
async def list_shares(row: OwnedPlan, runtime: RuntimeDep) -> ShareList:
    """The plan's shares that are not revoked (expired ones too, with `expired: true`)."""
    shares = await share_store(runtime).list_for_plan(row.plan_id)
    return ShareList(items=[ShareOut(**share_out(s)) for s in shares])


@router.delete(
    "/plans/{plan_id}/shares/{share_id}", status_code=status.HTTP_204_NO_CONTENT, responses=OWNER_PROBLEMS
)
async def revoke_share(
    row: OwnedPlan, runtime: RuntimeDep, share_id: Annotated[str, Path(max_length=64)]
) -> Response:
    """Revoke: the token or the reader loses access with the next request."""
    try:
        check_token(share_id)  # a share id is a UUID; e.g. a NUL byte would fail in Postgres (a 500)
    except UnsafeTokenError as exc:
        raise not_found("share") from exc
    if not await share_store(runtime).revoke(row.plan_id, share_id):
        raise not_found("share")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/shared/{token}", response_model=SharedPlanOut, responses=TOKEN_PROBLEMS)
async def read_linked_plan(row: LinkedPlan, runtime: RuntimeDep) -> SharedPlanOut:
    """The shared plan, read-only and without costs; no account needed, the token is the key."""
    return await shared_plan(runtime, row)


@router.get("/shared/{token}/versions", response_model=VersionList, responses=TOKEN_PROBLEMS)
async def list_linked_versions(row: LinkedPlan, runtime: RuntimeDep) -> VersionList:
    return await plan_versions(runtime, row, redact=True)


@router.get("/shared/{token}/versions/{version}", response_model=PlanVersionView, responses=TOKEN_PROBLEMS)
async def read_linked_version(
    row: LinkedPlan, runtime: RuntimeDep, version: Annotated[int, Path(ge=1, le=1_000_000)]
) -> PlanVersionView:
    return await plan_version(runtime, row, version, redact=True)
