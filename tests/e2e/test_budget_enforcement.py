"""Issue #6 end to end: spend that cannot run past its cap, on a stack of its own whose local
stand-in model is priced (a self-hosted model's price is settings, and at $0 no cap would
ever bind). Every LLM call reserves its maximum cost at the ledger before it runs.

- a plan whose request lowers its cap stops spending at it: sections degraded with reason
  `budget_exhausted`, the plan ends `partial` and says why, its settled cost <= its cap;
- a user with no budget left gets 402 problem+json, and nothing is published.

Many plans starting at once against a cap (the former 200-plans test here) is the
reliability battery's budget race: tests/chaos/test_budget_race.py.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from client import User, users_on
from tripmesh_contracts import TERMINAL_STATUSES
from tripmesh_devstack.services import default_services

pytestmark = pytest.mark.e2e

PRICED = {
    # $ per 1k tokens for the offline model: a call's maximum is ~ $0.005 (4,096 max tokens)
    "AGENT_RUNNER_LOCAL_INPUT_PRICE_PER_1K": "0.001",
    "AGENT_RUNNER_LOCAL_OUTPUT_PRICE_PER_1K": "0.001",
    "AGENT_RUNNER_CACHE_ENABLED": "false",  # identical plans would be served from the cache
    "AGENT_RUNNER_CONCURRENCY": "16",
}
TERMINAL = {s.value for s in TERMINAL_STATUSES}


@pytest.fixture(scope="module")
def priced_stack(stack_factory: Any) -> Any:
    return stack_factory("budgets", default_services(free_ports=True), env=PRICED)


@pytest.fixture
async def priced_http(priced_stack: Any) -> Any:
    async with httpx.AsyncClient(base_url=priced_stack.gateway_url, timeout=60) as client:
        yield client


async def ledger_rows(stack: Any, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
        cur = await conn.execute(query, params)  # type: ignore[arg-type]
        return list(await cur.fetchall())


async def settled(stack: Any, user_id: str, timeout: float = 120.0) -> Decimal:
    """The user's ledger spend once no reservation is open (every call's usage ingested or
    charged): a liveness bound, not a speed target."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await ledger_rows(
            stack,
            "SELECT count(*) FROM ledger.reservations"
            " WHERE user_id = %s AND granted AND accounted_at IS NULL",
            user_id,
        )
        if rows[0][0] == 0:
            break
        assert time.monotonic() < deadline, f"{rows[0][0]} reservations still open"
        await asyncio.sleep(0.5)
    spent = await ledger_rows(
        stack, "SELECT COALESCE(sum(cost_usd), 0) FROM ledger.usage_events WHERE user_id = %s", user_id
    )
    return Decimal(spent[0][0])


async def me(user: User) -> str:
    r = await user.get("/api/v1/auth/me")
    return str(r.json()["id"])


async def test_a_plan_stops_spending_at_its_own_cap(priced_stack: Any, priced_http: Any) -> None:
    user = await users_on(priced_http)("capped")
    cap = Decimal("0.012")
    plan_id = await user.create_plan(plan_budget_usd=str(cap))
    events = await user.events(plan_id, timeout=300)
    terminal = events[-1]
    assert terminal.event == "partial", [e.event for e in events]
    assert terminal.data["data"]["reason"] == "budget_exhausted", terminal.data
    exhausted = [
        e for e in events if e.event == "agent_failed" and e.data["data"].get("reason") == "budget_exhausted"
    ]
    assert exhausted, [e.data for e in events if e.event == "agent_failed"]

    assert await settled(priced_stack, await me(user)) <= cap
    plan = await user.wait_for_plan(plan_id, lambda p: Decimal(p.get("total_cost_usd") or 0) > 0)
    assert Decimal(plan["total_cost_usd"]) <= cap
    assert plan["status"] == "partial"


async def test_no_budget_left_is_402_before_anything_is_published(priced_http: Any) -> None:
    user = await users_on(priced_http)("broke")
    assert (await user.put("/api/v1/costs/budget", json={"daily_cap_usd": "0"})).status_code == 200
    r = await user.post("/api/v1/plans", json=plan_body_for(0))
    assert r.status_code == 402, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (await user.get("/api/v1/plans")).json()["items"] == []


def plan_body_for(n: int) -> dict[str, Any]:
    from client import plan_body

    return plan_body(title=f"Trip {n}", description=f"Plan number {n} of many")
