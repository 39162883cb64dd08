"""A small HTTP client for the e2e tests: only the public API, as a user would call it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse

TERMINAL = {"completed", "partial", "failed", "cancelled"}
ACTIVE = {"processing", "awaiting_approval"}


@dataclass
class SseEvent:
    id: str
    event: str
    data: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class User:
    http: httpx.AsyncClient
    email: str
    username: str
    password: str
    token: str = ""
    user_id: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def signup_and_login(self) -> None:
        r = await self.http.post(
            "/api/v1/auth/signup",
            json={
                "email": self.email,
                "username": self.username,
                "password": self.password,
                "password_confirm": self.password,
            },
        )
        assert r.status_code == 201, r.text
        self.user_id = r.json()["id"]
        r = await self.http.post("/api/v1/auth/login", json={"email": self.email, "password": self.password})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "bearer" and body["refresh_token"] and body["expires_in"] > 0
        self.token = body["access_token"]

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.get(path, headers=self.auth, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        return await self.http.post(path, headers=headers, **kw)

    async def put(self, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        return await self.http.put(path, headers=headers, **kw)

    async def create_plan(self, **overrides: Any) -> str:
        """POST a plan (`plan_body` with `overrides`); its id once the gateway accepted it."""
        r = await self.post("/api/v1/plans", json=plan_body(**overrides))
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    async def plan(self, plan_id: str) -> dict[str, Any]:
        r = await self.get(f"/api/v1/plans/{plan_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def versions(self, plan_id: str) -> list[dict[str, Any]]:
        r = await self.get(f"/api/v1/plans/{plan_id}/versions")
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def wait_for_plan(
        self, plan_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 120.0
    ) -> dict[str, Any]:
        """Poll GET /plans/{id} until `until(plan)` holds (for plans with several runs, where
        the SSE stream has more than one terminal event). Fails after `timeout` seconds: a
        bound on a wait, not a speed assertion."""
        deadline = time.monotonic() + timeout
        while True:
            plan = await self.plan(plan_id)
            if until(plan):
                return plan
            assert time.monotonic() < deadline, f"plan {plan_id} never got there: {plan['status']}"
            await asyncio.sleep(0.25)

    async def events_until(
        self,
        plan_id: str,
        stop: Callable[[SseEvent], bool],
        last_event_id: str | None = None,
        timeout: float = 120.0,
    ) -> list[SseEvent]:
        """Read the plan's SSE stream up to and including the first event for which `stop`
        holds (e.g. `approval_required`, or the terminal event of version 2), reconnecting
        with Last-Event-ID when the server ends the stream first. The gateway ends it after
        a terminal event that is the latest, and answers 204 to a resume after one - also
        just after a PUT whose run has not emitted anything yet."""
        out: list[SseEvent] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    after = out[-1].id if out else last_event_id
                    if await self._read_sse(plan_id, after, out, stop):
                        return out
                    await asyncio.sleep(0.2)
        except TimeoutError:
            kinds = [e.event for e in out]
            raise AssertionError(f"plan {plan_id}: the awaited event never came; got {kinds}") from None

    async def events(
        self, plan_id: str, last_event_id: str | None = None, timeout: float = 120.0
    ) -> list[SseEvent]:
        """Read the plan's SSE stream until the server ends it after the terminal event."""
        headers = dict(self.auth)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        out: list[SseEvent] = []
        async with aconnect_sse(
            self.http, "GET", f"/api/v1/plans/{plan_id}/events", headers=headers, timeout=timeout
        ) as source:
            assert source.response.status_code == 200, await source.response.aread()
            async for sse in source.aiter_sse():
                if not sse.event or (sse.event == "message" and not sse.data):
                    continue
                out.append(SseEvent(sse.id, sse.event, json.loads(sse.data)))
                if sse.event in TERMINAL:
                    break
        return out

    async def _read_sse(
        self, plan_id: str, after: str | None, out: list[SseEvent], stop: Callable[[SseEvent], bool]
    ) -> bool:
        """One connection: True once `stop` held, False when the server ended the stream."""
        headers = dict(self.auth)
        if after is not None:
            headers["Last-Event-ID"] = after
        async with aconnect_sse(
            self.http, "GET", f"/api/v1/plans/{plan_id}/events", headers=headers, timeout=None
        ) as source:
            if source.response.status_code == 204:
                return False
            assert source.response.status_code == 200, await source.response.aread()
            async for sse in source.aiter_sse():
                if not sse.event or (sse.event == "message" and not sse.data):
                    continue
                out.append(SseEvent(sse.id, sse.event, json.loads(sse.data)))
                if stop(out[-1]):
                    return True
        return False


UserFactory = Callable[..., Awaitable[User]]


def users_on(client: httpx.AsyncClient) -> UserFactory:
    """Signed-up, logged-in users with unique emails, so tests never share state."""

    async def new(name: str = "traveller") -> User:
        tag = uuid.uuid4().hex[:10]
        user = User(client, f"{name}-{tag}@example.com", f"{name}_{tag}", "a-long-enough-passphrase")
        await user.signup_and_login()
        return user

    return new


def plan_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Food and history in Portugal",
        "description": "Pastries, seafood and old towns",
        "destinations": ["Lisbon", "Porto"],
        "origin": "London",
        "start_date": "2027-05-01",
        "end_date": "2027-05-06",
        "budget_total": 4000,
        "budget_currency": "EUR",
        "traveler_count": 2,
        "preferences": {"interests": ["food", "history"]},
        "constraints": {},
    }
    body.update(overrides)
    return body
