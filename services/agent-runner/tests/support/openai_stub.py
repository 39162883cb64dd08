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
flight for as long as the test needs. `latency_ms` delays every answer; `latency_range_ms`
(low, high) instead draws each call's delay uniformly from that range with a seeded RNG, so
faults land mid-call reproducibly. Every request is logged in `calls` (in arrival order),
whatever it was answered with: tests compare that log with the usage events the runner
published.

The invoice (`invoice=PATH`, `--invoice PATH`): an append-only file, one JSON line per call the
stub answered (agent, model, answer, tokens, received_at / answered_at epoch seconds, and the
request's usage or reservation id when the caller sent one), written and fsync'd before the
answer leaves. It is the "provider invoice" the reliability battery reconciles the ledger
against: it survives a SIGKILL of the stub and lists calls whose caller died before reading
the answer.

In-process (same event loop as the test):

    async with OpenAiStub(latency_ms=50) as stub:
        stub.inject("429", agent="weather")
        ... WEATHER_AGENT_API_BASE = stub.url ...

As a process (e2e tests, benchmarks): `python openai_stub.py --port 9100 --latency-ms 500`;
`--latency-ms 200-3000 --seed 7` draws a latency per call, `--invoice PATH` writes the invoice;
`GET /_stub/calls` returns the log, `POST /_stub/faults {"faults": [...], "agent": ...}`
scripts faults (`"hold"` among them), `POST /_stub/release` releases held calls, `GET /_stub/health`
answers 200 once listening, with the calls so far, those in flight and whether one is held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
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
    answered_at: float | None = None
    usage_id: str | None = None
    """The caller's usage / reservation id (`X-Tripmesh-Usage-Id` or `metadata.usage_id`), if sent."""


def _agent_of(body: dict[str, Any]) -> str | None:
    for message in body.get("messages") or []:
        if message.get("role") == "system":
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            found = _AGENT_LINE.match(text or "")
            return found.group(1) if found else None
    return None


def _usage_id_of(request: web.Request, body: dict[str, Any]) -> str | None:
    for header in ("X-Tripmesh-Usage-Id", "X-Tripmesh-Reservation-Id"):
        if request.headers.get(header):
            return request.headers[header]
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        for key in ("usage_id", "reservation_id"):
            if metadata.get(key):
                return str(metadata[key])
    return None


def parse_latency(text: str) -> tuple[float, float]:
    """`"500"` -> (500, 500); `"200-3000"` -> (200, 3000) milliseconds."""
    low, _, high = text.partition("-")
    pair = (float(low), float(high or low))
    if pair[0] < 0 or pair[1] < pair[0]:
        raise ValueError(f"latency {text!r}: want MS or LOW-HIGH with 0 <= LOW <= HIGH")
    return pair


class Invoice:
    """Append-only, one fsync'd JSON line per answered call (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, call: StubCall) -> None:
        line = json.dumps(asdict(call), separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode())  # one write of an O_APPEND fd: lines never interleave
        os.fsync(self._fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def read_invoice(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The invoice's lines (a torn last line, from a kill mid-write, is skipped)."""
    out = []
    with open(path, encoding="utf-8") as lines:
        for raw in lines:
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(raw))
    return out


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    payload = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return web.json_response(payload, status=status, headers=headers)


class OpenAiStub:
    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        latency_range_ms: tuple[float, float] | None = None,
        seed: int | None = None,
        invoice: str | os.PathLike[str] | None = None,
        hang_seconds: float = 120.0,
        retry_after_seconds: float | None = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency_ms = latency_ms
        self.latency_range_ms = latency_range_ms
        """(low, high): each call's delay drawn uniformly from it (overrides `latency_ms`)."""
        self._rng = random.Random(seed)
        self.invoice = Invoice(invoice) if invoice is not None else None
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
        self.in_flight = 0
        """Calls received and not yet answered."""
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
        app.router.add_post("/_stub/release", self._release)
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
        if self.invoice is not None:
            self.invoice.close()

    def _delay_seconds(self) -> float:
        if self.latency_range_ms is not None:
            return self._rng.uniform(*self.latency_range_ms) / 1000
        return self.latency_ms / 1000

    async def __aenter__(self) -> OpenAiStub:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        call = StubCall(
            index=len(self.calls) + 1,
            agent=_agent_of(body),
            model=str(body.get("model")),
            answer="ok",
            usage_id=_usage_id_of(request, body),
        )
        self.calls.append(call)
        self.in_flight += 1
        try:
            response = await self._answer(call, body)
        finally:
            self.in_flight -= 1
        call.answered_at = time.time()
        if self.invoice is not None:
            self.invoice.append(call)
        return response

    async def _answer(self, call: StubCall, body: dict[str, Any]) -> web.Response:
        fault = self._next_fault(call.agent)
        delay = self._delay_seconds()
        if delay:
            await asyncio.sleep(delay)
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
            self.latency_range_ms = None
        return web.json_response({"pending_faults": self.pending_faults()})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"calls": len(self.calls), "in_flight": self.in_flight, "held": self.held.is_set()}
        )

    async def _release(self, request: web.Request) -> web.Response:
        self.release()
        return web.json_response({"released": True})


async def _serve(args: argparse.Namespace) -> None:
    low, high = parse_latency(args.latency_ms)
    stub = OpenAiStub(
        latency_ms=low,
        latency_range_ms=(low, high) if high > low else None,
        seed=args.seed,
        invoice=args.invoice,
        host=args.host,
        port=args.port,
    )
    await stub.start()
    print(f"openai stub listening on {stub.url}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", default="0", help="MS, or LOW-HIGH drawn per call (seeded)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the per-call latency draw")
    parser.add_argument("--invoice", default=None, help="append one fsync'd JSON line per answered call")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
