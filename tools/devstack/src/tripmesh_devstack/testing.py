"""pytest plugin (entry point `tripmesh_devstack`): real NATS and Postgres for any test.

Where a server comes from (ARCHITECTURE §6): the URL in the environment (`NATS_URL`,
`DATABASE_URL`) if set; else a testcontainers container when a Docker engine answers; else
the embedded binaries, started once per session in a temporary directory.

Tests that stop, kill or reconfigure a server use `own_nats_server` / `own_postgres_server`,
which always start a private embedded server, even when a `*_URL` is set (§9).
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tripmesh_devstack.nats import NatsServer
from tripmesh_devstack.postgres import PostgresServer, run_psql


@functools.cache
def docker_available(timeout: float = 1.0) -> bool:
    """True when a Docker engine answers a ping; never raises (there is no engine here)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(host.removeprefix("unix://"))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return b" 200 " in sock.recv(64)
        import docker  # tcp:// or ssh:// engines: let the SDK speak the protocol

        client = docker.DockerClient(base_url=host, timeout=int(max(timeout, 1)))
        return bool(client.ping())
    except Exception:
        return False


def database_url_for(url: str, database: str) -> str:
    """The same server URL with another database name (query string kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _container_nats() -> tuple[str, Any]:
    from testcontainers.community.nats import NatsContainer

    container = NatsContainer("nats:2.11", jetstream=True).start()
    return container.nats_uri(), container


def _container_postgres() -> tuple[str, Any]:
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(
        "postgres:17", username="postgres", password="postgres", dbname="tripmesh", driver=None
    ).start()
    return container.get_connection_url(driver=None), container


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JetStream-enabled NATS server for the session."""
    if url := os.environ.get("NATS_URL"):
        yield url
    elif docker_available():
        url, container = _container_nats()
        yield url
        container.stop()
    else:
        server = NatsServer(tmp_path_factory.mktemp("devstack-nats"))
        server.start()
        yield server.url
        server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL URL (database `tripmesh`, superuser `postgres`) for the session."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
    elif docker_available():
        url, container = _container_postgres()
        yield url
        container.stop()
    else:
        server = PostgresServer(tmp_path_factory.mktemp("devstack-postgres"))
        server.start()
        yield server.url
        server.stop()


@pytest.fixture
def fresh_database_url(database_url: str) -> Iterator[str]:
    """A brand-new empty database on the session's server, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = database_url_for(database_url, "postgres")
    run_psql(admin, f'CREATE DATABASE "{name}"')
    yield database_url_for(database_url, name)
    run_psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Servers:
    """Start private embedded servers on demand; every one is stopped after the test."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self.nats: list[NatsServer] = []
        self.postgres: list[PostgresServer] = []

    def new_nats(self, directory: Path | None = None, **kwargs: Any) -> NatsServer:
        server = NatsServer(directory or self._tmp.mktemp("own-nats"), **kwargs)
        self.nats.append(server)
        server.start()
        return server

    def new_postgres(self, directory: Path | None = None, **kwargs: Any) -> PostgresServer:
        server = PostgresServer(directory or self._tmp.mktemp("own-postgres"), **kwargs)
        self.postgres.append(server)
        server.start()
        return server

    def close(self) -> None:
        for nats in self.nats:
            nats.kill()  # the test is over: no need for a graceful shutdown
        for pg in self.postgres:
            pg.stop("immediate")


@pytest.fixture
def _devstack_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Servers]:
    servers = _Servers(tmp_path_factory)
    yield servers
    servers.close()


@pytest.fixture
def own_nats_server(_devstack_servers: _Servers) -> Callable[..., NatsServer]:
    """Factory: `own_nats_server(directory=None, **NatsServer kwargs) -> NatsServer` (started).

    Private to the test, free to kill/stop/restart; stopped at teardown.
    """
    return _devstack_servers.new_nats


@pytest.fixture
def own_postgres_server(_devstack_servers: _Servers) -> Callable[..., PostgresServer]:
    """Factory: `own_postgres_server(directory=None, **PostgresServer kwargs) -> PostgresServer`."""
    return _devstack_servers.new_postgres
