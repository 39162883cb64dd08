"""HTTP request count and latency by route template (`/api/v1/plans/{plan_id}`, never the
concrete path: ids in labels would explode the series count), method and status."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "tripmesh_http_requests_total",
    "HTTP requests served by the gateway",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "tripmesh_http_request_seconds",
    "Time to serve an HTTP request (SSE: the whole stream)",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600),
)
UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The matched route's full template. FastAPI >= 0.16x keeps included routers nested, so
    `scope["route"].path` lacks the prefixes; its effective route context has the full one.
    Otherwise the template is rebuilt from the concrete path and its path parameters."""
    if scope.get("route") is None:
        return UNMATCHED
    context: Any = (scope.get("fastapi") or {}).get("effective_route_context")
    full = getattr(context, "path_format", None)
    if isinstance(full, str) and full:
        return full
    params = {str(v): k for k, v in (scope.get("path_params") or {}).items()}
    return "/".join("{" + params[seg] + "}" if seg in params else seg for seg in scope["path"].split("/"))


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            labels = (scope["method"], route_template(scope), str(status_code))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_SECONDS.labels(*labels).observe(time.perf_counter() - started)
