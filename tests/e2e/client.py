"""A small HTTP client for the e2e tests: only the public API, as a user would call it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse

TERMINAL = {"completed", "partial", "failed", "cancelled"}


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
