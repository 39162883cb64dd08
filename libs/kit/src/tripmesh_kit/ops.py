"""/healthz, /readyz and /metrics for every service, plus RFC 9457 problem responses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

PROBLEM_JSON = "application/problem+json"

ReadinessCheck = Callable[[], Awaitable[None]]


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def ops_router(checks: Mapping[str, ReadinessCheck], timeout: float = 2.0) -> APIRouter:
    """`checks` maps a dependency name (nats, postgres, qdrant) to an async probe that raises
    when the dependency is unreachable."""
    router = APIRouter(tags=["ops"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        # concurrently: with two dependencies down the answer still comes within `timeout`
        # (a probe's own timeout is often 1-2 s)
        deps = list(checks)
        results = await asyncio.gather(
            *(asyncio.wait_for(checks[dep](), timeout) for dep in deps), return_exceptions=True
        )
        down = {
            dep: f"{type(exc).__name__}: {exc}"[:300]
            for dep, exc in zip(deps, results, strict=True)
            if isinstance(exc, BaseException)
        }
        if down:
            names = ", ".join(sorted(down))
            return problem(
                503,
                "Service not ready",
                f"unavailable: {names}",
                type_="https://tripmesh.dev/problems/not-ready",
                dependencies=down,
            )
        return JSONResponse({"status": "ready", "dependencies": sorted(checks)})

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def nats_check(get_client: Callable[[], Any]) -> ReadinessCheck:
    async def check() -> None:
        nc = get_client()
        if nc is None or not nc.is_connected:
            raise ConnectionError("not connected to NATS")
        await nc.flush(timeout=1)

    return check
