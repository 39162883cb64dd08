"""One load-generating process: `clients` concurrent clients, each its own httpx.AsyncClient
(one shared client degrades sharply with concurrency: httpcore's pool is O(N^2), issue #13),
each POSTing plans back to back until the window ends. Runs in its own process (spawned) so
that the client side is not one Python core; reports what ended inside the window.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import httpx

from bench.stack.workload import plan_body

BODIES = [plan_body(n) for n in range(50)]


@dataclass
class LoadResult:
    accepted: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0


@dataclass(frozen=True)
class Window:
    """Wall-clock times (time.time(): shared by every process) of the measured window."""

    start: float
    end: float


async def run_clients(url: str, tokens: list[str], clients: int, first: int, window: Window) -> LoadResult:
    result = LoadResult()

    async def client(index: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[index % len(tokens)]}"}
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            n = index
            while time.time() < window.end:
                sent = time.time()
                try:
                    r = await http.post("/api/v1/plans", json=BODIES[n % len(BODIES)], headers=headers)
                    outcome = "202" if r.status_code == 202 else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                ended = time.time()
                n += 1
                if not window.start <= ended < window.end:
                    continue
                result.sent += 1
                if outcome == "202":
                    result.accepted += 1
                    result.latencies.append(ended - sent)
                else:
                    result.errors[outcome] += 1
                    await asyncio.sleep(0.05)  # a failing gateway must not become a busy loop

    await asyncio.gather(*(client(first + i) for i in range(clients)))
    return result


def load_process(
    url: str, tokens: list[str], clients: int, first: int, out: Queue[Any], go: Queue[Any]
) -> None:
    """Entry point of a spawned loader: says "ready" once imported (slow on a busy machine),
    takes the window from `go`, and sends its LoadResult back through `out`."""
    out.put("ready")
    window: Window = go.get()
    result = asyncio.run(run_clients(url, tokens, clients, first, window))
    out.put(result)
