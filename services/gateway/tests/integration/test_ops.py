"""Ops endpoints, metrics by route template, and the generated API documents."""

from __future__ import annotations

import httpx
import pytest

from .conftest import RunningGateway, Users

pytestmark = pytest.mark.integration


async def test_health_and_readiness(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["dependencies"] == ["nats", "postgres"]


async def test_request_metrics_use_route_templates(
    gateway: RunningGateway, client: httpx.AsyncClient, users: Users
) -> None:
    _, auth = await users.new()
    await client.get("/plans/some-plan-id", headers=auth)
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        metrics = (await http.get("/metrics")).text
    assert (
        'tripmesh_http_requests_total{method="GET",route="/api/v1/plans/{plan_id}",status="404"}' in metrics
    )
    assert "some-plan-id" not in metrics
    assert "tripmesh_http_request_seconds_bucket" in metrics


async def test_openapi_and_asyncapi_are_served(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        openapi = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
        asyncapi = (await http.get("/asyncapi")).json()
        asyncapi_json = (await http.get("/asyncapi.json")).json()
    assert "/api/v1/plans/{plan_id}/events" in openapi["paths"]
    assert docs.status_code == 200
    assert asyncapi == asyncapi_json
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["channels"]["planCommandCreate"]["address"] == "plans.cmd.create"


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
