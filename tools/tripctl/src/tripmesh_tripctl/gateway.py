"""The gateway's public API as tripctl uses it: bearer token (or login), problem+json errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from tripmesh_tripctl.errors import OperatorError
from tripmesh_tripctl.settings import Settings

API = "/api/v1"
TERMINAL = {"completed", "partial", "failed", "cancelled"}


def plan_request(base: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON request with every flag that was given on top (repeatable ones as lists)."""
    body = dict(base)
    for key, value in flags.items():
        if value is None or value == ():
            continue
        body[key] = list(value) if isinstance(value, tuple) else value
    return body


def problem_message(response: httpx.Response) -> str:
    """`422 Unprocessable: destinations: must not be empty` from an RFC 9457 body."""
    try:
        problem = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:300]}"
    text = f"{response.status_code} {problem.get('title', '')}".strip()
    if problem.get("detail"):
        text += f": {problem['detail']}"
    for error in problem.get("errors") or []:
        if isinstance(error, dict):
            where = error.get("field") or error.get("pointer") or error.get("loc")
            text += f"\n  {where}: {error.get('message') or error.get('detail') or error.get('msg')}"
    return text


class Gateway:
    def __init__(self, settings: Settings, token: str | None = None) -> None:
        self.settings = settings
        self.base = settings.resolved_gateway_url()
        self.token = token or (settings.token.get_secret_value() if settings.token else None)
        self.http = httpx.AsyncClient(base_url=self.base, timeout=settings.timeout_seconds)

    async def __aenter__(self) -> Gateway:
        if not self.token:
            await self._login()
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.http.aclose()

    async def _login(self) -> None:
        s = self.settings
        if not (s.email and s.password):
            raise OperatorError(
                "no gateway credentials",
                hint="set TRIPCTL_TOKEN (or --token), or TRIPCTL_EMAIL and TRIPCTL_PASSWORD",
                exit_code=2,
            )
        r = await self._send(
            "POST", f"{API}/auth/login", json={"email": s.email, "password": s.password.get_secret_value()}
        )
        self.token = str(r.json()["access_token"])

    async def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = await self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise OperatorError(
                f"cannot reach the gateway at {self.base}: {type(exc).__name__}",
                hint="start the stack (`make up`) or set TRIPCTL_GATEWAY_URL / GATEWAY_PORT",
            ) from exc
        if r.status_code >= 400:
            raise OperatorError(f"{method} {path}: {problem_message(r)}")
        return r

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict((await self._send("POST", f"{API}/plans", json=body)).json())

    async def plan(self, plan_id: str) -> dict[str, Any]:
        return dict((await self._send("GET", f"{API}/plans/{plan_id}")).json())

    async def versions(self, plan_id: str) -> list[dict[str, Any]]:
        return list((await self._send("GET", f"{API}/plans/{plan_id}/versions")).json()["items"])

    async def events(self, plan_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The plan's SSE events from the first; ends after the final one (the gateway closes
        the stream there; a dropped connection resumes with Last-Event-ID)."""
        last: str | None = None
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                async with aconnect_sse(
                    self.http, "GET", f"{API}/plans/{plan_id}/events", headers=headers, timeout=None
                ) as source:
                    if source.response.status_code == 204:
                        return
                    if source.response.status_code >= 400:
                        await source.response.aread()
                        raise OperatorError(f"plan events: {problem_message(source.response)}")
                    async for sse in source.aiter_sse():
                        if not sse.event or not sse.data:
                            continue
                        last = sse.id or last
                        yield sse.event, dict(json.loads(sse.data))
                        if sse.event in TERMINAL:
                            return
            except httpx.TransportError as exc:
                if last is None:
                    raise OperatorError(
                        f"cannot reach the gateway at {self.base}: {type(exc).__name__}"
                    ) from exc
                continue  # resume after the last event we printed
