"""Embedded PostgreSQL: committed rows survive SIGKILL and immediate shutdown; fixtures work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from tripmesh_devstack import PostgresServer
from tripmesh_devstack.postgres import run_psql

pytestmark = pytest.mark.integration


def test_rows_survive_kill_and_immediate_stop(own_postgres_server: Callable[..., PostgresServer]) -> None:
    server = own_postgres_server()
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE trips (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO trips VALUES (1, 'Lisbon')")

    server.kill()  # SIGKILL postmaster and backends: crash recovery on the next start
    server.start()
    with psycopg.connect(server.url) as conn:
        conn.execute("INSERT INTO trips VALUES (2, 'Porto')")
        conn.commit()

    server.stop("immediate")
    server.restart()
    with psycopg.connect(server.url) as conn:
        rows = conn.execute("SELECT id, name FROM trips ORDER BY id").fetchall()
    assert rows == [(1, "Lisbon"), (2, "Porto")]
    settings = run_psql(server.url, "SHOW fsync; SHOW max_connections")
    assert settings.split() == ["on", "200"]


def test_second_server_on_the_same_data_takes_over(tmp_path: Path) -> None:
    first = PostgresServer(tmp_path / "pg")
    first.start()
    first.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)", "tripmesh")
    # As after a supervisor that lost its server: the leftover is stopped, data kept.
    second = PostgresServer(tmp_path / "pg", port=first.port)
    second.start()
    try:
        assert first._proc is not None and first._proc.wait(30) is not None
        assert second.psql("SELECT x FROM t", "tripmesh").strip() == "7"
    finally:
        second.stop()


def test_session_database_url(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() is not None


def test_fresh_database_is_empty_and_private(fresh_database_url: str, database_url: str) -> None:
    assert fresh_database_url != database_url
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE mine (x int)")


def test_private_parent_directories_are_fine(tmp_path: Path) -> None:
    """As root, postgres runs as another user; pytest (re)sets its temp root to 0700 at any
    time. The server must start anyway, without loosening the parents' permissions."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    server = PostgresServer(private / "pg")
    server.start()
    try:
        server.kill()
        private.chmod(0o700)
        tmp_path.chmod(0o700)
        server.start()
        assert server.psql("SELECT 1").strip() == "1"
        assert private.stat().st_mode & 0o777 == 0o700
    finally:
        server.stop()
