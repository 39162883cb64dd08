"""What the routes need at run time, built once by create_app() and kept on app.state."""

from __future__ import annotations

from dataclasses import dataclass

from faststream.nats import NatsBroker
from tripmesh_kit.bus import Bus

from tripmesh_gateway.auth_store import AuthStore
from tripmesh_gateway.limits import RateLimiter
from tripmesh_gateway.nats_credentials import NatsCredentialIssuer
from tripmesh_gateway.rpc import RpcClient
from tripmesh_gateway.security import TokenSigner
from tripmesh_gateway.settings import Settings
from tripmesh_gateway.store import AccountStore


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    broker: NatsBroker
    bus: Bus
    rpc: RpcClient
    store: AccountStore
    signer: TokenSigner
    auth: AuthStore
    """Sessions, API keys, profile (same pool as `store`)."""
    limiter: RateLimiter
    nats_credentials: NatsCredentialIssuer | None = None
    """Set when NATS has our auth callout: clients may read their events there directly."""
