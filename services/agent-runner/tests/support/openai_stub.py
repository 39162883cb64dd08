"""A local OpenAI-compatible chat-completions server for tests and benchmarks.

`POST /v1/chat/completions` is answered like the deterministic local model answers (its
`respond()`): tool calls first, then the agent's final JSON composed from the tool results, so
the runner's outputs validate exactly as with the local model - but over real HTTP, through
litellm's OpenAI provider. The agent is read from the `agent: <name>` line of the system
prompt.

Faults are scripted: `inject("429", "500", "timeout", agent="weather")` queues faults that
the next calls (of that agent, or of any agent when `agent` is None) answer instead of a
completion, in order. `hold` is not a failure: the call is answered normally, but only once
the test calls `release()` (`held` is set when such a call arrives) - a call provably in
flight for as long as the test needs. `latency_ms` delays every answer. Every request is logged in `calls`
(in arrival order), whatever it was answered with: tests compare that log with the usage
events the runner published.

In-process (same event loop as the test):

    async with OpenAiStub(latency_ms=50) as stub:
        stub.inject("429", agent="weather")
        ... WEATHER_AGENT_API_BASE = stub.url ...

As a process (e2e tests, benchmarks): `python openai_stub.py --port 9100 --latency-ms 500`;
`GET /_stub/calls` returns the log, `POST /_stub/faults {"faults": [...], "agent": ...}`
scripts faults, `GET /_stub/health` answers 200 once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

FAULTS = ("429", "500", "timeout", "hold")
_AGENT_LINE = re.compile(r"agent: (\w+)")


@dataclass
class StubCall:
    """One request the stub received."""

    index: int
    agent: str | None
    model: str
    answer: str
    """ok | 429 | 500 | timeout (held past any sane client timeout, then dropped); a held call
    that was then answered is `ok`"""
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    received_at: float = field(default_factory=time.time)


def _agent_of(body: dict[str, Any]) -> str | None:
    for message in body.get("messages") or []:
        if message.get("role") == "system":
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            found = _AGENT_LINE.match(text or "")
            return found.group(1) if found else None
    return None


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    payload = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return web.json_response(payload, status=status, headers=headers)


class OpenAiStub:
    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        hang_seconds: float = 120.0,
        retry_after_seconds: float | None = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency_ms = latency_ms
        self.hang_seconds = hang_seconds
        """How long a "timeout" fault holds the request (longer than the client's timeout)."""
        self.retry_after_seconds = retry_after_seconds
        """Sent as `Retry-After` with a 429 (None = no header)."""
        self.host, self.port = host, port
        self.calls: list[StubCall] = []
        self._faults: dict[str | None, deque[str]] = {}
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.held = asyncio.Event()
        """Set when a `hold` call arrived (it waits for `release()`)."""
        self._released = asyncio.Event()
        # respond() needs litellm (slow to import): import once, at construction
        from tripmesh_agent_runner.llm.local_model import respond

        self._respond = respond

    # -- scripting ---------------------------------------------------------------------------

    def inject(self, *faults: str, agent: str | None = None) -> None:
        """Answer the next calls (of `agent`, or of anyone) with these faults, in order."""
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")
        self._faults.setdefault(agent, deque()).extend(faults)

    def release(self) -> None:
        """Let every held call (and any later one) be answered."""
        self._released.set()

    def pending_faults(self) -> int:
        return sum(len(q) for q in self._faults.values())

    def calls_of(self, agent: str) -> list[StubCall]:
        return [c for c in self.calls if c.agent == agent]

    def _next_fault(self, agent: str | None) -> str | None:
        for key in (agent, None):
            queue = self._faults.get(key)
            if queue:
                return queue.popleft()
        return None

    # -- HTTP --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The `api_base` to give litellm (`.../v1`)."""
        return f"http://{self.host}:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/_stub/calls", self._calls)
        app.router.add_post("/_stub/faults", self._script)
        app.router.add_get("/_stub/health", self._health)
        return app

    async def start(self) -> OpenAiStub:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        self._closing.set()
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpenAiStub:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        agent = _agent_of(body)
        call = StubCall(index=len(self.calls) + 1, agent=agent, model=str(body.get("model")), answer="ok")
        self.calls.append(call)
        fault = self._next_fault(agent)
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if fault == "hold":
            self.held.set()
            await self._released.wait()
        if fault == "timeout":
            call.answer = "timeout"
            # held past the client's timeout; released early when the stub stops
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.hang_seconds)
            return _error(504, "timeout", "the stub held this request on purpose")
        if fault == "429":
            call.answer = "429"
            headers = (
                {"Retry-After": f"{self.retry_after_seconds:g}"}
                if self.retry_after_seconds is not None
                else None
            )
            return _error(429, "rate_limit_exceeded", "stub: rate limit reached", headers)
        if fault == "500":
            call.answer = "500"
            return _error(500, "server_error", "stub: internal error")
        tools = body.get("tools")
        answer = self._respond(str(body.get("model")), body.get("messages") or [], {"tools": tools})
        payload = answer.model_dump()
        payload["object"] = "chat.completion"
        usage = payload.get("usage") or {}
        call.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        call.completion_tokens = int(usage.get("completion_tokens") or 0)
        call.tool_calls = len(payload["choices"][0]["message"].get("tool_calls") or [])
        return web.json_response(payload, dumps=lambda v: json.dumps(v, default=str))

    async def _calls(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(c) for c in self.calls])

    async def _script(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            self.inject(*body.get("faults", []), agent=body.get("agent"))
        except ValueError as exc:
            return _error(400, "invalid_request", str(exc))
        if "latency_ms" in body:
            self.latency_ms = float(body["latency_ms"])
        return web.json_response({"pending_faults": self.pending_faults()})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": len(self.calls)})


async def _serve(args: argparse.Namespace) -> None:
    stub = OpenAiStub(latency_ms=args.latency_ms, host=args.host, port=args.port)
    await stub.start()
    print(f"openai stub listening on {stub.url}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
