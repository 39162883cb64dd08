"""Issue #10, health: with the embedded Postgres stopped under a running stack, /readyz of the
services that use it answers 503 problem+json naming `postgres`; once Postgres is back it
answers 200 again, without a restart. /healthz stays 200 throughout.

The stack is this module's own (stack_factory): stopping the session stack's Postgres would
pull it from under the other e2e tests (ARCHITECTURE.md §9, fault tests own their servers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import StackFactory
from tripmesh_devstack.services import default_services
from tripmesh_devstack.supervisor import Stack

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "planner", "agent-runner", "cost-ledger", "vector-sync")
USES_POSTGRES = ("gateway", "planner", "cost-ledger")


async def probe(http: httpx.AsyncClient, stack: Stack, path: str) -> dict[str, httpx.Response]:
    answers = await asyncio.gather(*(http.get(stack.url(name) + path) for name in SERVICES))
    return dict(zip(SERVICES, answers, strict=True))


async def until(
    http: httpx.AsyncClient,
    stack: Stack,
    holds: Callable[[dict[str, httpx.Response]], bool],
    what: str,
    timeout: float = 90.0,
) -> dict[str, httpx.Response]:
    """Poll /readyz of every service until `holds` (a liveness bound, not a speed target)."""
    deadline = time.monotonic() + timeout
    while True:
        answers = await probe(http, stack, "/readyz")
        if holds(answers):
            return answers
        if time.monotonic() > deadline:
            seen = {name: (r.status_code, r.text[:200]) for name, r in answers.items()}
            raise AssertionError(f"never {what}: {seen}")
        await asyncio.sleep(0.5)


def names_postgres(r: httpx.Response) -> bool:
    if r.status_code != 503 or not r.headers["content-type"].startswith("application/problem+json"):
        return False
    body: dict[str, Any] = r.json()
    return body["status"] == 503 and "postgres" in body["dependencies"] and "postgres" in body["detail"]


async def test_readyz_follows_postgres_and_healthz_stays_up(stack_factory: StackFactory) -> None:
    stack = stack_factory("readiness", default_services(free_ports=True))
    assert stack.postgres is not None
    async with httpx.AsyncClient(timeout=10) as http:
        await until(http, stack, lambda a: all(r.status_code == 200 for r in a.values()), "all ready")

        await asyncio.to_thread(stack.postgres.stop, "fast")
        try:
            down = await until(
                http,
                stack,
                lambda a: all(names_postgres(a[name]) for name in USES_POSTGRES),
                "503 naming postgres",
            )
            for name in USES_POSTGRES:
                body = down[name].json()
                assert set(body["dependencies"]) == {"postgres"}, body  # NATS is fine
                assert body["type"].endswith("/not-ready") and body["title"], body
            for name in ("agent-runner", "vector-sync"):  # no Postgres: still ready
                assert down[name].status_code == 200, down[name].text
            alive = await probe(http, stack, "/healthz")
            assert {n: r.status_code for n, r in alive.items()} == dict.fromkeys(SERVICES, 200)
        finally:
            await asyncio.to_thread(stack.postgres.start)

        await until(http, stack, lambda a: all(r.status_code == 200 for r in a.values()), "ready again")
        assert not stack.crashed(), [r.tag for r in stack.crashed()]
        alive = await probe(http, stack, "/healthz")
        assert {n: r.status_code for n, r in alive.items()} == dict.fromkeys(SERVICES, 200)
