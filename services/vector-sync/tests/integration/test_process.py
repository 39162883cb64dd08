"""`python -m tripmesh_vector_sync` as operators start it: configured only by the environment,
ready on /readyz, consuming and answering, and exiting 0 on SIGTERM (drain)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.nats import NatsBroker
from tripmesh_contracts import new_id, subjects
from tripmesh_contracts.rpc import SearchPlansRequest, SearchReply
from tripmesh_kit.bus import Bus, make_broker

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ready(port: int, proc: asyncio.subprocess.Process, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout  # liveness bound: imports take seconds here
    async with httpx.AsyncClient() as client:
        while True:
            assert proc.returncode is None, "vector-sync exited during start-up"
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "vector-sync never became ready"
            await asyncio.sleep(0.2)


async def test_the_service_process_consumes_answers_and_drains(
    vs_nats_url: str, tmp_path: Path, make_change: Any, make_snapshot: Any
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "NATS_URL": vs_nats_url,
        "TRIPMESH_DATA_DIR": str(tmp_path),
        "VECTOR_SYNC_HTTP_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "LOG_FORMAT": "json",
    }
    for key in (
        "QDRANT_URL",
        "VECTOR_SYNC_QDRANT_PATH",
        "VECTOR_SYNC_EMBEDDER",
        "VECTOR_SYNC_EMBEDDING_MODEL",
        "VECTOR_SYNC_COLLECTION_PREFIX",
    ):
        env.pop(key, None)
    log_path = tmp_path / "vector-sync.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tripmesh_vector_sync",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
    client: NatsBroker = make_broker(vs_nats_url, "vector-sync-process-test")
    try:
        await _ready(port, proc)
        await client.connect()
        plan = new_id()
        await Bus(client).publish(
            make_change(plan, 1, make_snapshot("Porto wine weekend")), subjects.plan_changed(plan)
        )
        deadline = time.monotonic() + 60
        while True:
            response = await client.request(
                SearchPlansRequest(user_id="user-a", q="wine").to_bytes(),
                subjects.SVC_VECTORS_SEARCH,
                timeout=10,
            )
            reply = SearchReply.model_validate_json(response.body)
            if [h.plan_id for h in reply.hits] == [plan]:
                break
            assert time.monotonic() < deadline, f"plan never became searchable: {reply}"
            await asyncio.sleep(0.2)
        assert (tmp_path / "qdrant").is_dir()  # local storage under TRIPMESH_DATA_DIR
    finally:
        await client.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
    assert code == 0, log_path.read_text()[-2000:]
