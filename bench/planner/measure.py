"""Plans through the whole system with the offline model, 1 planner then 2 (issue #4).

For each planner count it starts the stack exactly as `make up` does (tripmesh_devstack's
Stack: embedded NATS and Postgres, the five services as processes, `--runners` agent-runner
replicas, every agent on the deterministic offline model), signs up one user per client,
warms the runner up with `--warmup` plans (its first jobs build the tools' indexes), then
submits `--plans` plans through the public API from `--concurrency` clients. Each client
creates a plan (POST /api/v1/plans), reads its SSE stream to the terminal event, and takes
the next. Reported per planner count:

- plans/s: plans / (first POST -> last terminal event);
- latency of one plan, POST -> its terminal event as the client receives it: p50, p90, p99
  (nearest rank), min, mean, max;
- the final statuses, and the CPU seconds each process used during the measured window
  (where the time goes on this machine).

Plans differ (destinations, dates, travellers), and the runner's shared LLM cache is off, so
no plan is served from another's answers. A measurement, never a test: it asserts nothing
about speed. Writes reports/bench/planner-<timestamp>.json and .md and prints the table.

    uv run python bench/planner/measure.py --plans 60 --concurrency 8 --planners 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from httpx_sse import aconnect_sse
from tripmesh_devstack.services import LOAD_TEST_LIMITS, default_services
from tripmesh_devstack.supervisor import Stack

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports" / "bench"
TERMINAL = {"completed", "partial", "failed", "cancelled"}
TRIPS = [
    (["Lisbon", "Porto"], "London", "EUR"),
    (["Madrid", "Seville"], "Paris", "EUR"),
    (["Rome", "Milan"], "Berlin", "EUR"),
    (["Vienna", "Prague"], "Amsterdam", "EUR"),
    (["Barcelona, ES"], "Lisbon", "EUR"),
]


def plan_body(n: int) -> dict[str, Any]:
    destinations, origin, currency = TRIPS[n % len(TRIPS)]
    start = 1 + n % 20
    return {
        "title": f"Bench trip {n}",
        "description": "Benchmark plan",
        "destinations": destinations,
        "origin": origin,
        "start_date": f"2027-06-{start:02d}",
        "end_date": f"2027-06-{start + 3 + n % 4:02d}",
        "budget_total": 20000,  # within budget: one pass through every stage
        "budget_currency": currency,
        "traveler_count": 1 + n % 3,
        "preferences": {"interests": ["food", "history"]},
    }


@dataclass
class Client:
    http: httpx.AsyncClient
    token: str = ""

    async def sign_up(self) -> None:
        tag = uuid.uuid4().hex[:10]
        email, password = f"bench-{tag}@example.com", "a-long-enough-passphrase"
        body = {"email": email, "username": f"bench_{tag}", "password": password}
        body["password_confirm"] = password
        r = await self.http.post("/api/v1/auth/signup", json=body)
        r.raise_for_status()
        r = await self.http.post("/api/v1/auth/login", json={"email": email, "password": password})
        r.raise_for_status()
        self.token = r.json()["access_token"]

    async def one_plan(self, n: int) -> tuple[float, str]:
        """POST a plan, read its events to the terminal one: (seconds, final status)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        started = time.monotonic()
        r = await self.http.post("/api/v1/plans", json=plan_body(n), headers=headers)
        if r.status_code != 202:
            raise RuntimeError(f"POST /plans answered {r.status_code}: {r.text[:300]}")
        plan_id = r.json()["id"]
        async with aconnect_sse(
            self.http, "GET", f"/api/v1/plans/{plan_id}/events", headers=headers, timeout=None
        ) as source:
            async for sse in source.aiter_sse():
                if sse.event in TERMINAL:
                    return time.monotonic() - started, sse.event
        raise RuntimeError(f"plan {plan_id}: the stream ended without a terminal event")


@dataclass
class Phase:
    planners: int
    runners: int
    plans: int
    concurrency: int
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    stack_start_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "planners": self.planners,
            "runners": self.runners,
            "plans": self.plans,
            "concurrency": self.concurrency,
            "wall_seconds": round(self.wall_seconds, 3),
            "plans_per_second": round(self.plans / self.wall_seconds, 3),
            "latency_seconds": {
                "p50": round(percentile(ordered, 50), 3),
                "p90": round(percentile(ordered, 90), 3),
                "p99": round(percentile(ordered, 99), 3),
                "min": round(ordered[0], 3),
                "mean": round(statistics.fmean(ordered), 3),
                "max": round(ordered[-1], 3),
            },
            "statuses": dict(self.statuses),
            "cpu_seconds": {k: round(v, 2) for k, v in sorted(self.cpu_seconds.items())},
            "stack_start_seconds": round(self.stack_start_seconds, 1),
        }


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def processes(stack: Stack) -> dict[str, list[psutil.Process]]:
    """Each service replica, NATS and Postgres, with their children (Postgres backends)."""
    pids: dict[str, int | None] = {r.tag: stack.pid(r.spec.name, r.index) for r in stack.all_replicas()}
    pids["nats"] = stack.nats.pid if stack.nats else None
    pids["postgres"] = stack.postgres.pid if stack.postgres else None
    pids["bench-client"] = os.getpid()
    out: dict[str, list[psutil.Process]] = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        try:
            root = psutil.Process(pid)
            out[name] = [root, *(root.children(recursive=True) if name != "bench-client" else [])]
        except psutil.NoSuchProcess:
            continue
    return out


def cpu_times(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for name, group in procs.items():
        total = 0.0
        for proc in group:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        totals[name] = total
    return totals


async def drive(clients: list[Client], first: int, count: int) -> tuple[float, list[tuple[float, str]]]:
    """`count` plans from `len(clients)` closed-loop clients; (wall seconds, results)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(first, first + count):
        queue.put_nowait(n)
    results: list[tuple[float, str]] = []

    async def worker(client: Client) -> None:
        while not queue.empty():
            results.append(await client.one_plan(queue.get_nowait()))

    started = time.monotonic()
    await asyncio.gather(*(worker(c) for c in clients))
    return time.monotonic() - started, results


async def measure(stack: Stack, phase: Phase, warmup: int) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        clients = [Client(http) for _ in range(phase.concurrency)]
        for client in clients:
            await client.sign_up()
        if warmup:
            await drive(clients[: min(warmup, len(clients))], 10_000, warmup)
        procs = processes(stack)
        before = cpu_times(procs)
        phase.wall_seconds, results = await drive(clients, 0, phase.plans)
        after = cpu_times(procs)
    phase.latencies = [seconds for seconds, _ in results]
    phase.statuses = Counter(status for _, status in results)
    phase.cpu_seconds = {name: after[name] - before.get(name, 0.0) for name in after}


def run_phase(args: argparse.Namespace, planners: int, workdir: Path) -> Phase:
    phase = Phase(planners, args.runners, args.plans, args.concurrency)
    data = workdir / f"planners-{planners}"
    console = (workdir / f"planners-{planners}-console.log").open("w")
    services = default_services(free_ports=True, replicas={"planner": planners, "agent-runner": args.runners})
    env = {"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", "AGENT_RUNNER_CACHE_ENABLED": "false"}
    env |= LOAD_TEST_LIMITS
    stack = Stack(data, services, console=console, env=env)
    started = time.monotonic()
    stack.start()
    phase.stack_start_seconds = time.monotonic() - started
    print(f"[{planners} planner(s)] stack ready in {phase.stack_start_seconds:.1f}s; measuring", flush=True)
    try:
        asyncio.run(measure(stack, phase, args.warmup))
    finally:
        stack.stop()
        console.close()
    return phase


def git_commit() -> str:
    try:
        cmd = ["git", "rev-parse", "--short", "HEAD"]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Planner throughput and latency ({report['recorded_at']})",
        "",
        f"`{report['command']}` at {report['git_commit']}, {report['machine']['cpus']} CPUs,"
        f" load average before {report['machine']['loadavg_before']}. Offline deterministic model,"
        " runner cache off; latency = POST /plans -> terminal SSE event at the client.",
        "",
        "| planners | runners | plans | clients | plans/s | p50 s | p90 s | p99 s | max s | statuses |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        lat = r["latency_seconds"]
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        lines.append(
            f"| {r['planners']} | {r['runners']} | {r['plans']} | {r['concurrency']} |"
            f" {r['plans_per_second']:.2f} | {lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} |"
            f" {lat['max']:.2f} | {statuses} |"
        )
    lines += ["", "CPU seconds during the measured window:", ""]
    for r in report["results"]:
        top = sorted(r["cpu_seconds"].items(), key=lambda kv: -kv[1])
        lines.append(f"- {r['planners']} planner(s): " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Plans/s and POST -> terminal-event latency through the whole stack (offline model),"
        " for each planner replica count. Writes reports/bench/planner-<timestamp>.{json,md}.",
    )
    parser.add_argument("--plans", type=int, default=60, help="measured plans per planner count (60)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients, closed loop (8)")
    parser.add_argument("--planners", default="1,2", help="planner replica counts, one stack each (1,2)")
    parser.add_argument("--runners", type=int, default=1, help="agent-runner replicas (1)")
    parser.add_argument("--warmup", type=int, default=4, help="unmeasured plans first (4)")
    parser.add_argument("--out", type=Path, default=REPORTS, help="report directory (reports/bench)")
    args = parser.parse_args(argv)
    args.planner_counts = [int(x) for x in str(args.planners).split(",") if x.strip()]
    if args.plans < 1 or args.concurrency < 1 or not args.planner_counts:
        parser.error("--plans, --concurrency and --planners must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "uv run python bench/planner/measure.py " + " ".join(sys.argv[1:] if argv is None else argv)
    loadavg = [round(x, 2) for x in os.getloadavg()]
    workdir = Path(tempfile.mkdtemp(prefix="bench-planner-"))
    phases = [run_phase(args, n, workdir) for n in args.planner_counts]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "recorded_at": stamp,
        "command": command.strip(),
        "git_commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_before": loadavg},
        "results": [p.summary() for p in phases],
        "logs": str(workdir),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"planner-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    json_path.with_suffix(".md").write_text(table)
    print(table)
    print(f"written: {json_path} (+ .md)")


if __name__ == "__main__":
    main()
