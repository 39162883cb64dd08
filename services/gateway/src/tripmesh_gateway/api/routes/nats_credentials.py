"""POST /api/v1/auth/nats-credentials: a short-lived token to read one's own events straight
from NATS (ARCHITECTURE §6b). The broker enforces the scope through auth callout
(tripmesh_gateway.nats_credentials); without the callout configured the route is a 503."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tripmesh_gateway.api.deps import CurrentUser, RuntimeDep
from tripmesh_gateway.api.errors import ApiProblem
from tripmesh_gateway.nats_credentials import client_permissions, inbox_prefix

router = APIRouter(prefix="/auth", tags=["auth"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid credentials (problem+json)"},
    503: {"description": "This deployment's NATS has no auth callout for clients (problem+json)"},
}


class NatsCredentialsOut(BaseModel):
    nats_url: str = Field(description="Where to connect")
    token: str = Field(description="Connect with it as the NATS token (`token=` in nats-py)")
    inbox_prefix: str = Field(description="Connect with this inbox prefix: replies arrive only there")
    expires_at: datetime = Field(description="The server refuses the token, and closes connections, then")
    expires_in: int = Field(description="Seconds until expires_at")
    subscribe: list[str] = Field(description="Subjects the connection may subscribe to")
    publish: list[str] = Field(description="Subjects it may publish to (JetStream API calls)")
    stream: str = Field(default="PLAN_EVENTS", description="The stream holding those events")


@router.post("/nats-credentials", response_model=NatsCredentialsOut, responses=RESPONSES)
async def issue_nats_credentials(user: CurrentUser, runtime: RuntimeDep) -> NatsCredentialsOut:
    """Credentials for reading your own plan events (`plans.evt.<you>.>`) and account alerts
    (`users.evt.<you>.>`) directly from NATS, live or through a consumer on PLAN_EVENTS
    filtered to them. Anything else is a permission violation, enforced by the broker."""
    issuer = runtime.nats_credentials
    if issuer is None:
        raise ApiProblem(
            503,
            "Service Unavailable",
            "direct NATS access is not configured here: the NATS server needs an auth callout and "
            "the gateway GATEWAY_NATS_CALLOUT_ISSUER_SEED and GATEWAY_NATS_CLIENT_URL",
            kind="nats-credentials-unavailable",
        )
    credential = issuer.issue(user.id)
    permissions = client_permissions(user.id)
    return NatsCredentialsOut(
        nats_url=issuer.client_url,
        token=credential.token,
        inbox_prefix=inbox_prefix(user.id),
        expires_at=credential.expires_at,
        expires_in=int(issuer.ttl.total_seconds()),
        subscribe=permissions.subscribe,
        publish=permissions.publish,
    )
