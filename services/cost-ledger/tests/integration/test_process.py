"""`python -m tripmesh_cost_ledger` as an operator runs it: env-configured, ops endpoints,
metrics, and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from tripmesh_contracts import UsageEvent, subjects
from tripmesh_kit.bus import Bus, make_broker

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_service_process(
    ledger_nats_url: str, ledger_db_url: str, make_usage: Callable[..., UsageEvent], tmp_path: Any
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": ledger_nats_url,
        "DATABASE_URL": ledger_db_url,
        "COST_LEDGER_HTTP_PORT": str(port),
        "LOG_FORMAT": "json",
        "TRIPMESH_DATA_DIR": str(tmp_path),
    }
    env.pop("COST_LEDGER_DATABASE_URL", None)
    log = (tmp_path / "ledger.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tripmesh_cost_ledger", env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
            for _ in range(600):
                with_ready = await _get(http, "/readyz")
                if with_ready is not None and with_ready.status_code == 200:
                    break
                assert proc.returncode is None, (tmp_path / "ledger.log").read_text()
                await asyncio.sleep(0.1)
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            assert with_ready is not None
            assert set(with_ready.json()["dependencies"]) == {"nats", "postgres"}

            client = make_broker(ledger_nats_url, "process-test")
            await client.connect()
            event = make_usage("proc-user", cost="0.42")
            await Bus(client).publish(event, subjects.usage(event.user_id))
            await client.stop()
            for _ in range(600):
                async with await psycopg.AsyncConnection.connect(ledger_db_url) as conn:
                    cur = await conn.execute("SELECT cost_usd FROM ledger.usage_events")
                    rows = await cur.fetchall()
                if rows:
                    break
                await asyncio.sleep(0.1)
            assert [str(r[0]) for r in rows] == ["0.42000000"]
            exposed = (await http.get("/metrics")).text
            for name in (
                "tripmesh_ledger_events_ingested_total 1.0",
                "tripmesh_ledger_duplicates_total",
                "tripmesh_ledger_batch_size_bucket",
                "tripmesh_ledger_ingest_seconds_bucket",
            ):
                assert name in exposed, name
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


async def _get(http: httpx.AsyncClient, path: str) -> httpx.Response | None:
    try:
        return await http.get(path)
    except httpx.TransportError:
        return None
