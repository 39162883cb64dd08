"""/readyz: 503 problem+json naming every dependency that is down, 200 once they are back;
/healthz answers 200 whatever the dependencies do."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.testclient import TestClient
from tripmesh_kit.ops import ops_router

state = {"postgres": True, "nats": True}


async def postgres() -> None:
    if not state["postgres"]:
        raise ConnectionError("connection refused")


async def nats() -> None:
    if not state["nats"]:
        await asyncio.sleep(60)  # a hung dependency: the probe's timeout answers


def test_readyz_names_what_is_down_and_recovers() -> None:
    app = FastAPI()
    app.include_router(ops_router({"nats": nats, "postgres": postgres}, timeout=0.2))
    client = TestClient(app)
    assert client.get("/readyz").json() == {"status": "ready", "dependencies": ["nats", "postgres"]}

    state.update(postgres=False, nats=False)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["detail"] == "unavailable: nats, postgres"
    assert body["dependencies"]["postgres"] == "ConnectionError: connection refused"
    assert body["dependencies"]["nats"].startswith("TimeoutError")
    assert client.get("/healthz").status_code == 200

    state.update(postgres=True, nats=True)
    assert client.get("/readyz").status_code == 200
