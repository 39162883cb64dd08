"""Environment names (ARCHITECTURE.md §9): shared ones unprefixed, the rest GATEWAY_."""

from __future__ import annotations

import pytest
from tripmesh_gateway.settings import Environment, Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_PORT", "DATABASE_URL", "GATEWAY_DATABASE_URL", "GATEWAY_HTTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.environment is Environment.DEVELOPMENT
    assert (settings.access_token_ttl_seconds, settings.refresh_token_ttl_seconds) == (900, 14 * 86400)
    assert settings.jwt_secret is None


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9000")
    monkeypatch.setenv("HTTP_PORT", "1")  # an unprefixed name must not leak in
    monkeypatch.setenv("GATEWAY_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://shared/db")
    monkeypatch.setenv("NATS_URL", "nats://bus:4222")
    monkeypatch.setenv("TRIPMESH_DATA_DIR", "/var/lib/tripmesh")
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "production")
    monkeypatch.setenv("GATEWAY_JWT_SECRET", "from-env")
    settings = Settings()
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 9000)
    assert settings.database_url == "postgresql://shared/db"
    assert settings.nats_url == "nats://bus:4222"
    assert str(settings.data_dir) == "/var/lib/tripmesh"
    assert settings.environment is Environment.PRODUCTION
    assert settings.jwt_secret is not None and settings.jwt_secret.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings)

    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://own-role/db")
    assert Settings().database_url == "postgresql://own-role/db"  # the service's own DSN wins


def test_admin_emails_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_ADMIN_EMAILS", raising=False)
    assert Settings().admin_emails == []
    monkeypatch.setenv("GATEWAY_ADMIN_EMAILS", " ops@example.com, ,Boss@Example.com ")
    assert Settings().admin_emails == ["ops@example.com", "Boss@Example.com"]
