"""One measured point: a load (closed or open loop) at one LLM latency, warm-up, then a window.

Closed loop: N clients, each creating a plan, reading its stream to the terminal event, and
creating the next. Open loop: plans arrive as a Poisson process at a set rate, whatever is in
flight (each arrival takes an idle client or opens a new one). Plans that end inside the
window count: plans/s = those plans / window, latency = POST -> terminal event of each. The
window is `window_seconds`, cut short once `max_plans` have ended in it (the smoke test).
After the window the load stops and the plans in flight are let finish before the next point.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.stack import meters
from bench.stack.llm_server import LlmServer
from bench.stack.systems import System
from bench.stack.workload import BenchClient, PlanResult

Mode = Literal["closed", "open"]
CPUS = os.cpu_count() or 1


@dataclass(frozen=True)
class PointSpec:
    latency_ms: float
    mode: Mode
    load: float
    """Clients (closed loop) or arrivals per second (open loop)."""

    @property
    def label(self) -> str:
        what = f"{int(self.load)} clients" if self.mode == "closed" else f"{self.load:g} plans/s offered"
        return f"{self.latency_ms:g} ms LLM, {self.mode} loop, {what}"


@dataclass(frozen=True)
class Timing:
    warmup_seconds: float
    window_seconds: float
    max_plans: int | None = None
    drain_seconds: float = 300.0


@dataclass
class Load:
    """The plans of one point, as they end, and the clients that ran them."""

    base_url: str
    tokens: list[str]
    results: list[PlanResult] = field(default_factory=list)
    clients: list[BenchClient] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    numbers: itertools.count[int] = field(default_factory=itertools.count)

    def new_client(self) -> BenchClient:
        client = BenchClient(self.base_url, self.tokens[len(self.clients) % len(self.tokens)])
        self.clients.append(client)
        return client

    async def run_one(self, client: BenchClient) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            result = await client.one_plan(next(self.numbers))
        finally:
            self.in_flight -= 1
        self.results.append(result)
        if result.error is not None:
            await asyncio.sleep(0.2)  # a failing stack must not turn the loop into a busy loop

    async def closed(self, clients: int) -> None:
        async def worker(client: BenchClient) -> None:
            while not self.stop.is_set():
                await self.run_one(client)

        await asyncio.gather(*(worker(self.new_client()) for _ in range(clients)))

    async def open(self, rate: float, seed: int) -> None:
        arrivals = random.Random(seed)
        idle: list[BenchClient] = []
        tasks: set[asyncio.Task[None]] = set()

        async def arrival() -> None:
            client = idle.pop() if idle else self.new_client()
            try:
                await self.run_one(client)
            finally:
                idle.append(client)

        while not self.stop.is_set():
            task = asyncio.create_task(arrival())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), arrivals.expovariate(rate))
        if tasks:
            await asyncio.gather(*tasks)


async def measure(
    system: System, llm: LlmServer, spec: PointSpec, tokens: list[str], timing: Timing
) -> dict[str, Any]:
    await asyncio.to_thread(llm.set_latency, spec.latency_ms)
    load = Load(system.url, tokens)
    runner = asyncio.create_task(
        load.closed(int(spec.load)) if spec.mode == "closed" else load.open(spec.load, seed=13)
    )
    own = os.getpid()

    def pids() -> dict[str, int | None]:
        return {**system.pids(), "llm-server": llm.pid, "bench-client": own}

    await asyncio.sleep(timing.warmup_seconds)
    cpu0, busy0, calls0 = meters.cpu_seconds(pids(), own), meters.machine_busy_seconds(), llm.calls()
    start = time.monotonic()
    with meters.PeakMemory(pids, own) as memory:
        deadline = start + timing.window_seconds
        while time.monotonic() < deadline and not runner.done():
            ended = sum(1 for r in load.results if r.ended_at >= start)
            if timing.max_plans is not None and ended >= timing.max_plans:
                break
            await asyncio.sleep(0.1)
        end = time.monotonic()
        cpu1, busy1, calls1 = meters.cpu_seconds(pids(), own), meters.machine_busy_seconds(), llm.calls()
    load.stop.set()
    # plans still in flight after the drain are abandoned: the next point starts anyway
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(runner, timing.drain_seconds)
    for client in load.clients:
        await client.aclose()
    counted = [r for r in load.results if start <= r.ended_at <= end]
    cpu = {name: cpu1[name] - cpu0.get(name, 0.0) for name in cpu1}
    return summarize(system, spec, end - start, counted, cpu, memory, busy1 - busy0, calls1 - calls0,
                     load.max_in_flight)  # fmt: skip


def summarize(
    system: System,
    spec: PointSpec,
    window: float,
    counted: list[PlanResult],
    cpu: dict[str, float],
    memory: meters.PeakMemory,
    machine_busy: float,
    llm_calls: int,
    max_in_flight: int,
) -> dict[str, Any]:
    ended = [r for r in counted if r.error is None]
    lat = sorted(r.seconds for r in ended)
    plans = len(ended)
    stack_names = set(system.pids())
    stack_cpu = sum(v for k, v in cpu.items() if k in stack_names)

    def rounded(value: float | None, digits: int = 3) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "system": system.name,
        "llm_latency_ms": spec.latency_ms,
        "mode": spec.mode,
        "clients": int(spec.load) if spec.mode == "closed" else None,
        "offered_plans_per_second": spec.load if spec.mode == "open" else None,
        "window_seconds": round(window, 2),
        "plans": plans,
        "plans_per_second": round(plans / window, 3) if window > 0 else 0.0,
        "latency_seconds": {
            "p50": rounded(meters.percentile(lat, 50)),
            "p95": rounded(meters.percentile(lat, 95)),
            "p99": rounded(meters.percentile(lat, 99)),
            "mean": rounded(statistics.fmean(lat) if lat else None),
            "max": rounded(lat[-1] if lat else None),
        },
        "statuses": dict(Counter(r.status for r in ended if r.status)),
        "errors": len(counted) - plans,
        "error_kinds": dict(Counter(r.error for r in counted if r.error)),
        "max_in_flight": max_in_flight,
        "llm_calls": llm_calls,
        "llm_calls_per_plan": round(llm_calls / plans, 1) if plans else None,
        "cpu_seconds": {k: round(v, 2) for k, v in sorted(cpu.items())},
        "cpu_seconds_per_plan": {k: round(v / plans, 4) for k, v in sorted(cpu.items())} if plans else {},
        "stack_cpu_seconds_per_plan": round(stack_cpu / plans, 4) if plans else None,
        "peak_rss_mb": {k: round(v / 2**20, 1) for k, v in sorted(memory.rss.items())},
        "peak_pss_mb": {k: round(v / 2**20, 1) for k, v in sorted(memory.pss.items())},
        # a sum of per-process peaks (an upper bound of the stack's peak), of PSS: sums add up
        "stack_peak_pss_mb": round(sum(v for k, v in memory.pss.items() if k in stack_names) / 2**20, 1),
        "machine_busy_fraction": round(machine_busy / (CPUS * window), 2) if window else None,
        "other_processes_cpu_seconds": round(machine_busy - sum(cpu.values()), 1),
    }
