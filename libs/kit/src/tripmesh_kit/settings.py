"""Settings shared by every service (ARCHITECTURE.md §9).

Operator-known names stay unprefixed (NATS_URL, DATABASE_URL, LOG_FORMAT, ...); everything
else takes the service's prefix, which each service sets in its own subclass through
`model_config = SettingsConfigDict(env_prefix="PLANNER_")`. A service may take its own
`<PREFIX>DATABASE_URL` and falls back to `DATABASE_URL`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def shared(name: str, *more: str) -> AliasChoices:
    """An unprefixed environment name (optionally with prefixed alternatives first)."""
    return AliasChoices(*more, name)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "tripmesh"
    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias=shared("NATS_URL"))
    data_dir: Path = Field(default=Path(".tripmesh"), validation_alias=shared("TRIPMESH_DATA_DIR"))
    log_format: str = Field(default="auto", validation_alias=shared("LOG_FORMAT"))
    """json | console | auto (json unless stderr is a TTY)."""
    log_level: str = Field(default="INFO", validation_alias=shared("LOG_LEVEL"))
    http_host: str = "127.0.0.1"
    http_port: int = 0
    drain_timeout_seconds: float = 20.0
    """How long SIGTERM waits for in-flight messages before the process exits."""
    provision_streams: bool = True
    """Create/update streams and consumers at start-up (idempotent)."""
