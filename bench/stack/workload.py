"""A bench client: only the public API, as a user calls it.

Each client owns one httpx.AsyncClient: many concurrent requests through one client degrade
sharply (httpcore's pool assigns requests to connections in O(N^2); issue #13), and the bench
must not measure its own client. Plans differ (destinations, dates, travellers) and stay
within budget: one pass through every stage, no re-runs.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse

TERMINAL = frozenset({"completed", "partial", "failed", "cancelled"})
TRIPS = [
    (["Lisbon", "Porto"], "London"),
    (["Madrid", "Seville"], "Paris"),
    (["Rome", "Milan"], "Berlin"),
    (["Vienna", "Prague"], "Amsterdam"),
    (["Barcelona, ES"], "Lisbon"),
]
PASSWORD = "a-long-enough-bench-passphrase"


def plan_body(n: int) -> dict[str, Any]:
    destinations, origin = TRIPS[n % len(TRIPS)]
    start = 1 + n % 20
    return {
        "title": f"Bench trip {n}",
        "description": "Food, museums and old towns",
        "destinations": destinations,
        "origin": origin,
        "start_date": f"2027-06-{start:02d}",
        "end_date": f"2027-06-{start + 3 + n % 4:02d}",
        "budget_total": 20000,
        "budget_currency": "EUR",
        "traveler_count": 1 + n % 3,
        "preferences": {"interests": ["food", "history"]},
    }


@dataclass
class PlanResult:
    started_at: float
    ended_at: float
    status: str | None
    """The terminal event (completed, partial, failed, cancelled); None on an error."""
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at


async def sign_up(base_url: str) -> str:
    """A new user; its access token."""
    return await log_in(base_url, await create_user(base_url))


async def create_user(base_url: str) -> str:
    """A new user; its email (log in with `log_in`)."""
    tag = uuid.uuid4().hex[:12]
    email = f"bench-{tag}@example.com"
    body = {"email": email, "username": f"bench_{tag}", "password": PASSWORD, "password_confirm": PASSWORD}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        (await http.post("/api/v1/auth/signup", json=body)).raise_for_status()
    return email


async def log_in(base_url: str, email: str) -> str:
    """A fresh access token for a user `create_user` made."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        r = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        r.raise_for_status()
        return str(r.json()["access_token"])


class BenchClient:
    def __init__(self, base_url: str, token: str, timeout: float = 600.0) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self.auth = {"Authorization": f"Bearer {token}"}

    async def one_plan(self, n: int) -> PlanResult:
        """POST a plan, read its SSE stream to the terminal event. Never raises: a failure is
        a result with `error` set (the loop goes on, the report counts it)."""
        started = time.monotonic()
        try:
            r = await self.http.post("/api/v1/plans", json=plan_body(n), headers=self.auth)
            if r.status_code != 202:
                return PlanResult(started, time.monotonic(), None, f"POST /plans {r.status_code}")
            path = f"/api/v1/plans/{r.json()['id']}/events"
            async with aconnect_sse(self.http, "GET", path, headers=self.auth) as source:
                async for sse in source.aiter_sse():
                    if sse.event in TERMINAL:
                        return PlanResult(started, time.monotonic(), sse.event)
            return PlanResult(started, time.monotonic(), None, "stream ended without a terminal event")
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return PlanResult(started, time.monotonic(), None, type(exc).__name__)

    async def aclose(self) -> None:
        await self.http.aclose()
