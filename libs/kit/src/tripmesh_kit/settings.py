"""Settings shared by every service (ARCHITECTURE.md §9).

Operator-known names stay unprefixed (NATS_URL, DATABASE_URL, LOG_FORMAT, ...); everything
else takes the service's prefix, which each service sets in its own subclass through
`model_config = SettingsConfigDict(env_prefix="PLANNER_")`. A service may take its own
`<PREFIX>DATABASE_URL` and falls back to `DATABASE_URL`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def shared(name: str, *more: str) -> AliasChoices:
    """An unprefixed environment name (optionally with prefixed alternatives first)."""
    return AliasChoices(*more, name)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "tripmesh"
    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias=shared("NATS_URL"))
    """May carry `user:password@`; so does it after validation when NATS_USER is set."""
    nats_user: str | None = Field(default=None, validation_alias=shared("NATS_USER"))
    nats_password: SecretStr | None = Field(default=None, validation_alias=shared("NATS_PASSWORD"))
    """This service's own NATS identity (issue #8); unset: as NATS_URL says (no auth)."""
    data_dir: Path = Field(default=Path(".tripmesh"), validation_alias=shared("TRIPMESH_DATA_DIR"))
    log_format: str = Field(default="auto", validation_alias=shared("LOG_FORMAT"))
    """json | console | color | auto (json unless stderr is a TTY)."""
    log_level: str = Field(default="INFO", validation_alias=shared("LOG_LEVEL"))
    http_host: str = "127.0.0.1"
    http_port: int = 0
    drain_timeout_seconds: float = 20.0
    """How long SIGTERM waits for in-flight messages before the process exits."""
    provision_streams: bool = True
    """Create/update streams and consumers at start-up (idempotent)."""
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=shared("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    )
    """Where traces go (OTLP/HTTP protobuf); unset: tracing off (tripmesh_kit.telemetry)."""
    otel_service_name: str | None = Field(default=None, validation_alias=shared("OTEL_SERVICE_NAME"))
    """The trace resource's service.name; unset: `service_name`."""

    @property
    def trace_service_name(self) -> str:
        return self.otel_service_name or self.service_name

    @model_validator(mode="after")
    def _credentials_in_url(self) -> ServiceSettings:
        """Fold NATS_USER / NATS_PASSWORD into every URL of NATS_URL (comma-separated), so
        every connection the service makes (broker, CLIs) authenticates the same way; a URL
        that already names a user keeps it."""
        if self.nats_user:
            self.nats_url = with_credentials(
                self.nats_url,
                self.nats_user,
                self.nats_password.get_secret_value() if self.nats_password else "",
            )
        return self


def with_credentials(urls: str, user: str, password: str) -> str:
    out = []
    for url in urls.split(","):
        parts = urlsplit(url.strip())
        if parts.username or not parts.hostname:
            out.append(url.strip())
            continue
        userinfo = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        out.append(urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}")))
    return ",".join(out)
