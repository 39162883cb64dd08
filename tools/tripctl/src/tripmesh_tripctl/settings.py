"""tripctl's settings: the services' own environment names, plus `TRIPCTL_*`.

The servers are found the way the services find them (`NATS_URL`, `DATABASE_URL`,
`QDRANT_URL`, `GATEWAY_PORT`); a `TRIPCTL_` name wins over the shared one. tripctl is an
operator, so on NATS it needs the operator identity (`admin`: stream info, consumer info,
DLQ reads and deletes, republishing to any subject). Where it comes from, first match wins:

1. credentials in `NATS_URL` itself, or `TRIPCTL_NATS_USER` / `TRIPCTL_NATS_PASSWORD`;
2. the local stack's password file: `make up` writes every identity's password to
   `<TRIPMESH_DATA_DIR>/nats/users.json` (mode 0600, default `./.tripmesh`), and tripctl
   reads `admin`'s from there when it runs on the same machine;
3. none (a server without authentication).

Postgres likewise: `TRIPCTL_DATABASE_URL` / `DATABASE_URL`, else the local stack's
superuser (`<data>/postgres/superuser.password`, port `TRIPMESH_POSTGRES_PORT` or 55432).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from tripmesh_kit.settings import with_credentials

ADMIN = "admin"
"""The devstack's operator identity (tools/devstack identities.py)."""


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    nats_url: str = Field(
        default="nats://127.0.0.1:4222", validation_alias=_env("TRIPCTL_NATS_URL", "NATS_URL")
    )
    nats_user: str | None = Field(default=None, validation_alias=_env("TRIPCTL_NATS_USER"))
    nats_password: SecretStr | None = Field(default=None, validation_alias=_env("TRIPCTL_NATS_PASSWORD"))
    database_url: str | None = Field(
        default=None, validation_alias=_env("TRIPCTL_DATABASE_URL", "DATABASE_URL")
    )
    ledger_database_url: str | None = Field(
        default=None, validation_alias=_env("TRIPCTL_LEDGER_DATABASE_URL", "COST_LEDGER_DATABASE_URL")
    )
    """The cost-ledger's own role, passed on to `ledger rebuild` when set."""
    qdrant_url: str | None = Field(default=None, validation_alias=_env("TRIPCTL_QDRANT_URL", "QDRANT_URL"))
    qdrant_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("TRIPCTL_QDRANT_API_KEY", "QDRANT_API_KEY")
    )
    qdrant_path: Path | None = Field(
        default=None, validation_alias=_env("TRIPCTL_QDRANT_PATH", "VECTOR_SYNC_QDRANT_PATH")
    )
    """Local Qdrant storage (no QDRANT_URL); default `<data_dir>/qdrant`."""
    collection_prefix: str = Field(
        default="", validation_alias=_env("TRIPCTL_COLLECTION_PREFIX", "VECTOR_SYNC_COLLECTION_PREFIX")
    )
    data_dir: Path = Field(default=Path(".tripmesh"), validation_alias=_env("TRIPMESH_DATA_DIR"))
    gateway_url: str | None = Field(default=None, validation_alias=_env("TRIPCTL_GATEWAY_URL"))
    gateway_port: int = Field(default=8080, validation_alias=_env("GATEWAY_PORT"))
    postgres_port: int = Field(default=55432, validation_alias=_env("TRIPMESH_POSTGRES_PORT"))
    token: SecretStr | None = Field(default=None, validation_alias=_env("TRIPCTL_TOKEN"))
    """A gateway bearer token (access token or API key) for `plan ...`."""
    email: str | None = Field(default=None, validation_alias=_env("TRIPCTL_EMAIL"))
    password: SecretStr | None = Field(default=None, validation_alias=_env("TRIPCTL_PASSWORD"))
    timeout_seconds: float = Field(default=10.0, validation_alias=_env("TRIPCTL_TIMEOUT_SECONDS"))
    lag_threshold: int = Field(default=16, ge=1, validation_alias=_env("TRIPCTL_LAG_THRESHOLD"))
    """The runner ScaledObjects' `lagThreshold` (deploy/k3s/components/keda): `bus status`
    shows the replicas each runner pool would want at this threshold."""

    def operator_nats_url(self) -> str:
        """NATS_URL with the operator's credentials folded in (see the module docstring)."""
        if self.nats_user:
            password = self.nats_password.get_secret_value() if self.nats_password else ""
            return with_credentials(self.nats_url, self.nats_user, password)
        if admin := local_password(self.data_dir / "nats" / "users.json", ADMIN):
            return with_credentials(self.nats_url, ADMIN, admin)
        return self.nats_url

    def operator_database_url(self) -> str | None:
        if self.database_url:
            return self.database_url
        superuser = local_password(self.data_dir / "postgres" / "superuser.password", "postgres")
        if superuser is None:
            return None
        return with_credentials(
            f"postgresql://127.0.0.1:{self.postgres_port}/tripmesh", "postgres", superuser
        )

    def resolved_gateway_url(self) -> str:
        return (self.gateway_url or f"http://127.0.0.1:{self.gateway_port}").rstrip("/")

    def resolved_qdrant_path(self) -> Path:
        return self.qdrant_path or self.data_dir / "qdrant"


def local_password(path: Path, name: str) -> str | None:
    """`name`'s password from a devstack password file, if there is one we may read."""
    try:
        value = json.loads(path.read_text()).get(name)
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def load() -> Settings:
    """The only place tripctl reads the environment."""
    return Settings()
