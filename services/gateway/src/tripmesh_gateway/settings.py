"""Gateway settings (ARCHITECTURE.md §9).

Shared operator names stay unprefixed: `NATS_URL`, `DATABASE_URL` (or `GATEWAY_DATABASE_URL`,
which wins), `TRIPMESH_DATA_DIR`, `LOG_FORMAT`, and `GATEWAY_PORT` for the listen port.
Everything else takes the `GATEWAY_` prefix (`GATEWAY_HTTP_HOST`, `GATEWAY_JWT_SECRET`, ...).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from tripmesh_kit.settings import ServiceSettings, shared


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    service_name: str = "gateway"
    environment: Environment = Field(
        default=Environment.DEVELOPMENT, validation_alias=AliasChoices("GATEWAY_ENV", "GATEWAY_ENVIRONMENT")
    )
    """production refuses placeholder JWT secrets and hides error details."""
    http_host: str = "127.0.0.1"
    """Listen address; containers set GATEWAY_HTTP_HOST=0.0.0.0."""
    http_port: int = Field(default=8080, validation_alias=AliasChoices("GATEWAY_PORT"))
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/tripmesh",
        validation_alias=shared("DATABASE_URL", "GATEWAY_DATABASE_URL"),
    )
    db_pool_max_size: int = 10

    jwt_secret: SecretStr | None = None
    """HS256 key. Unset: generated once into <TRIPMESH_DATA_DIR>/gateway/jwt.key (mode 0600);
    every replica must then share that file, or set this to the same value everywhere."""
    jwt_issuer: str = "tripmesh-gateway"
    jwt_audience: str = "tripmesh-api"
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30)
    refresh_token_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=60)

    rpc_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a svc.* request waits for its reply before the route answers 503."""
    cost_timeout_seconds: float = Field(default=1.0, gt=0)
    """Costs on a plan are a garnish: a slow ledger leaves them out instead of failing."""
    budget_check_timeout_seconds: float = Field(default=1.0, gt=0)
    budget_check_enabled: bool = True
    """Ask svc.ledger.budget.check before accepting a plan (402 when the cap is reached)."""
    publish_timeout_seconds: float = Field(default=2.0, gt=0)
    publish_attempts: int = Field(default=3, ge=1)
    """Attempts (same Nats-Msg-Id) before a command publish gives up and the route says 503."""

    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    sse_retry_ms: int = Field(default=3000, ge=0)
    """`retry:` hint sent to EventSource clients with the first event."""

    # --- limits (services/gateway/README.md, "Limits"); 0 switches a limit off -----------
    rate_limit_per_hour: int = Field(default=1000, ge=0)
    """Requests per user (access tokens) per window, counted in Postgres across replicas."""
    api_key_rate_limit_per_hour: int = Field(default=1000, ge=0)
    """Requests per API key per window."""
    anonymous_rate_limit_per_hour: int = Field(default=100, ge=0)
    """Signup / login / refresh calls per client IP per window (the seeds' 100 per hour)."""
    rate_limit_window_seconds: int = Field(default=3600, ge=1)
    max_active_plans: int = Field(default=10, ge=0)
    """Plans per user not yet finished (processing / awaiting approval); a new one is a 429."""
    max_body_bytes: int = Field(default=64 * 1024, ge=0)
    """Larger request bodies are a 413 before any route reads them."""
    max_api_keys_per_user: int = Field(default=20, ge=0)

    # --- direct NATS access for clients (nats_credentials.py); unset: 503 -----------------
    nats_callout_issuer_seed: SecretStr | None = None
    """Account nkey seed (SA...) whose public key is the NATS server's `auth_callout.issuer`;
    set, every replica answers the server's `$SYS.REQ.USER.AUTH` requests."""
    nats_client_url: str | None = None
    """The NATS URL clients connect to (no credentials in it)."""
    nats_credentials_ttl_seconds: int = Field(default=15 * 60, ge=30)
    """How long an issued NATS credential, and a connection made with it, lasts."""

    admin_emails: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated e-mails whose existing accounts are made admins at start-up (it never
    revokes: `python -m tripmesh_gateway revoke-admin <email>` does)."""

    @field_validator("admin_emails", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value
