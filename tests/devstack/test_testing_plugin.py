"""The pytest plugin's helpers and its session fixtures' source rule."""

from __future__ import annotations

import pytest
from tripmesh_devstack.testing import database_url_for, docker_available


def test_database_url_for_keeps_the_server() -> None:
    url = "postgresql://app:pw@db.local:5433/tripmesh?sslmode=disable"
    assert database_url_for(url, "test_1") == "postgresql://app:pw@db.local:5433/test_1?sslmode=disable"


def test_no_docker_engine_is_a_quick_false(monkeypatch: pytest.MonkeyPatch) -> None:
    docker_available.cache_clear()
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    try:
        assert docker_available() is False
    finally:
        docker_available.cache_clear()


def test_session_nats_url_is_jetstream(nats_url: str) -> None:
    assert nats_url.startswith("nats://")
