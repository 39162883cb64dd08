"""Request limits enforced before anything is published: rate limits (per user, per API key,
per IP for anonymous /auth calls), the cap on a user's active plans, and the body size.

Counters live in Postgres (`accounts.rate_counters`), not in process memory, so every
gateway replica sees the same counts: a fixed window per bucket, one upsert per request."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool
from tripmesh_contracts import PlanStatus, subjects
from tripmesh_contracts.rpc import PlanListReply, PlanListRequest
from tripmesh_kit.logging import get_logger
from tripmesh_kit.ops import problem

from tripmesh_gateway.api.errors import ApiProblem
from tripmesh_gateway.rpc import RpcClient, ServiceError, ServiceUnavailable
from tripmesh_gateway.store import SCHEMA, AccountStore

if TYPE_CHECKING:
    from tripmesh_gateway.runtime import Runtime

log = get_logger(__name__)

ACTIVE_PLAN_LOOKBACK = 100
"""The cap counts active plans among the user's most recent plans (one planner page)."""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    hits: int
    retry_after_seconds: int


class RateLimiter:
    def __init__(self, pool: AsyncConnectionPool, window_seconds: int) -> None:
        self.pool = pool
        self.window_seconds = window_seconds

    async def hit(self, bucket: str, limit: int) -> RateDecision:
        """Count one request against `bucket`; allowed while the window holds <= `limit`.
        The window is aligned on the database clock, the same for every replica."""
        window = self.window_seconds
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO {SCHEMA}.rate_counters AS c (bucket, window_start, hits)"
                " VALUES (%s, to_timestamp(floor(extract(epoch FROM now()) / %s) * %s), 1)"
                " ON CONFLICT (bucket, window_start) DO UPDATE SET hits = c.hits + 1"
                " RETURNING c.hits, extract(epoch FROM c.window_start + make_interval(secs => %s) - now())",
                (bucket, window, window, window),
            )
            row = await cur.fetchone()
            assert row is not None
            hits, remaining = int(row[0]), float(row[1])
            if hits == 1:
                # The first hit of a window: drop every bucket's finished windows (indexed).
                await conn.execute(
                    f"DELETE FROM {SCHEMA}.rate_counters"
                    " WHERE window_start < now() - make_interval(secs => %s)",
                    (window,),
                )
        return RateDecision(
            allowed=hits <= limit,
            limit=limit,
            hits=hits,
            retry_after_seconds=max(1, math.ceil(remaining)),
        )

    async def enforce(self, bucket: str, limit: int, who: str) -> None:
        """429 problem+json with Retry-After when `bucket` is over `limit` (0 = no limit)."""
        if limit <= 0:
            return
        decision = await self.hit(bucket, limit)
        if decision.allowed:
            return
        log.info("rate_limited", bucket=bucket.split(":", 1)[0], hits=decision.hits, limit=limit)
        raise ApiProblem(
            429,
            "Too Many Requests",
            f"rate limit of {limit} requests per {self.window_seconds} s reached for {who};"
            f" retry in {decision.retry_after_seconds} s",
            kind="rate-limited",
            headers={
                "Retry-After": str(decision.retry_after_seconds),
                "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(decision.retry_after_seconds),
            },
            limit=limit,
            window_seconds=self.window_seconds,
        )


async def active_plan_count(store: AccountStore, rpc: RpcClient, user_id: str, timeout: float) -> int | None:
    """How many of the user's recent plans are not finished: accepted by the gateway but not
    yet seen by the planner, or processing / awaiting approval. None when the planner did
    not answer (the caller lets the plan through: the cap is a guard, budgets are the fence)."""
    rows, _ = await store.list_plans(user_id, ACTIVE_PLAN_LOOKBACK, 0)
    if not rows:
        return 0
    try:
        reply = await rpc.call(
            subjects.SVC_PLANNER_LIST,
            PlanListRequest(user_id=user_id, limit=ACTIVE_PLAN_LOOKBACK),
            PlanListReply,
            timeout=timeout,
        )
    except (ServiceUnavailable, ServiceError) as exc:
        log.warning("active_plan_count_unavailable", error=repr(exc)[:200])
        return None
    status = {view.id: view.status for view in reply.items}
    return sum(1 for row in rows if not PlanStatus(status.get(row.plan_id, PlanStatus.PROCESSING)).terminal)


async def enforce_active_plan_cap(runtime: Runtime, user_id: str, idempotency_key: str | None) -> None:
    """429 when the user already has `max_active_plans` plans in progress. A retried create
    (an Idempotency-Key already used) is never refused: it creates nothing new."""
    cap = runtime.settings.max_active_plans
    if cap <= 0:
        return
    if idempotency_key is not None and await runtime.store.plan_by_idempotency_key(user_id, idempotency_key):
        return
    active = await active_plan_count(
        runtime.store, runtime.rpc, user_id, runtime.settings.budget_check_timeout_seconds
    )
    if active is not None and active >= cap:
        raise ApiProblem(
            429,
            "Too Many Requests",
            f"you have {active} plans in progress (the limit is {cap}); wait for one to finish or cancel one",
            kind="active-plans-limit",
            headers={"Retry-After": "30"},
            active_plans=active,
            limit=cap,
        )


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Scope]]
Send = Callable[[Scope], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodySizeLimitMiddleware:
    """413 problem+json for a request body over `max_bytes`, before any route sees it: by
    Content-Length when sent, else by counting a chunked body while buffering it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS") and declared is None:
            await self.app(scope, receive, send)  # no body, or SSE: never buffer
            return
        buffered: list[Scope] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Scope:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "Content Too Large",
            f"the request body is larger than {self.max_bytes} bytes",
            type_="https://tripmesh.dev/problems/body-too-large",
            max_bytes=self.max_bytes,
            instance=scope.get("path"),
        )
        await response(scope, receive, send)
