"""`make bench-gateway`: accepted POST /api/v1/plans per second, each with its publish acknowledged.

    uv run python -m bench.gateway.posts [--clients 32] [--processes 2] [--seconds 20]
        [--warmup-seconds 5] [--planner running,stopped] [--users 8]

The gateway answers 202 only after JetStream acknowledged the PlanCreate (commands.py
`_ensure_published`: insert the plan's row, `Bus.publish_raw` awaits the PubAck, mark the row
published), so every 202 counted here is a command stored in PLAN_COMMANDS. The stack is
started as `make up` starts it (the five services, embedded NATS and Postgres), the per-user
limits lifted (LOAD_TEST_LIMITS). Load: `--processes` spawned loaders, `--clients` in all,
each client its own httpx.AsyncClient POSTing back to back. A phase per `--planner` mode:
`running` (the planner consumes the commands and runs the plans with the agents, taking CPU
from the gateway, as in production) and `stopped` (the planner terminated: commands queue up,
the gateway's own ceiling). Writes reports/bench/gateway-posts-<ts>.{json,md}. Never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tripmesh_devstack.services import LOAD_TEST_LIMITS, default_services
from tripmesh_devstack.supervisor import Stack

from bench.gateway.load import LoadResult, Window, load_process
from bench.stack import meters, report
from bench.stack.workload import sign_up

ROOT = Path(__file__).resolve().parents[2]
TARGET = 2500.0
CPUS = os.cpu_count() or 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gateway.posts", description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=32, help="concurrent clients in all (32)")
    p.add_argument("--processes", type=int, default=2, help="loader processes sharing them (2)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured window per phase (20)")
    p.add_argument("--warmup-seconds", type=float, default=5.0, help="load before each window (5)")
    p.add_argument("--planner", default="running,stopped", help="phases, in order (running,stopped)")
    p.add_argument("--users", type=int, default=8, help="users the clients share (8)")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "bench", help="report directory")
    args = p.parse_args(argv)
    args.phases = [m.strip() for m in str(args.planner).split(",") if m.strip()]
    if not args.phases or set(args.phases) - {"running", "stopped"}:
        p.error("--planner: running and/or stopped")
    if args.clients < args.processes or args.processes < 1:
        p.error("at least one client per loader process")
    return args


def measure_phase(stack: Stack, tokens: list[str], args: argparse.Namespace, planner: str) -> dict[str, Any]:
    if planner == "stopped":
        stack.terminate("planner")
    elif stack.pid("planner") is None:
        stack.start_replica("planner")
    ctx = multiprocessing.get_context("spawn")
    out, go = ctx.Queue(), ctx.Queue()
    share = [
        args.clients // args.processes + (i < args.clients % args.processes) for i in range(args.processes)
    ]
    loaders = [
        ctx.Process(target=load_process, args=(stack.gateway_url, tokens, n, sum(share[:i]), out, go))
        for i, n in enumerate(share)
    ]
    for proc in loaders:
        proc.start()
    for _ in loaders:
        assert out.get(timeout=300) == "ready"
    start = time.time() + 1.0 + args.warmup_seconds
    window = Window(start, start + args.seconds)
    for _ in loaders:
        go.put(window)
    own = os.getpid()

    def pids() -> dict[str, int | None]:
        named = {r.tag: stack.pid(r.spec.name, r.index) for r in stack.all_replicas()}
        named["nats"] = stack.nats.pid if stack.nats else None
        named["postgres"] = stack.postgres.pid if stack.postgres else None
        return {**named, **{f"loader-{i}": p.pid for i, p in enumerate(loaders)}}

    time.sleep(max(0.0, window.start - time.time()))
    cpu0, busy0 = meters.cpu_seconds(pids(), own), meters.machine_busy_seconds()
    time.sleep(max(0.0, window.end - time.time()))
    cpu1, busy1 = meters.cpu_seconds(pids(), own), meters.machine_busy_seconds()
    results: list[LoadResult] = [out.get(timeout=120) for _ in loaders]
    for proc in loaders:
        proc.join(30)
    return summarize(planner, args, results, {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}, busy1 - busy0)


def summarize(
    planner: str, args: argparse.Namespace, results: list[LoadResult], cpu: dict[str, float], busy: float
) -> dict[str, Any]:
    accepted = sum(r.accepted for r in results)
    lat = sorted(x for r in results for x in r.latencies)
    errors: dict[str, int] = {}
    for r in results:
        for kind, count in r.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    per_post = {k: round(v / accepted * 1000, 3) for k, v in sorted(cpu.items())} if accepted else {}

    def ms(p: float) -> float | None:
        value = meters.percentile(lat, p)
        return None if value is None else round(value * 1000, 1)

    return {
        "planner": planner,
        "clients": args.clients,
        "processes": args.processes,
        "window_seconds": args.seconds,
        "accepted": accepted,
        "accepted_per_second": round(accepted / args.seconds, 1),
        "latency_ms": {"p50": ms(50), "p95": ms(95), "p99": ms(99)},
        "errors": errors,
        "cpu_seconds": {k: round(v, 2) for k, v in sorted(cpu.items())},
        "cpu_ms_per_accepted_post": per_post,
        "machine_busy_fraction": round(busy / (CPUS * args.seconds), 2),
    }


def markdown(data: dict[str, Any]) -> str:
    env = data["environment"]
    lines = [
        f"# Gateway: accepted POST /api/v1/plans per second ({data['recorded_at']})",
        "",
        f"`{data['command']}` at {env['versions']['git_commit']}; {env['machine']['cpus']} CPUs,"
        f" load average before {env['machine']['loadavg_before']} (shared machine). A 202 = the"
        " PlanCreate acknowledged by JetStream. Target (issue #13): >= 2,500/s.",
        "",
        "| planner | clients (processes) | accepted/s | p50 ms | p95 ms | p99 ms | errors"
        " | gateway CPU ms/POST | stack CPU ms/POST | loaders CPU ms/POST | machine busy |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in data["results"]:
        per = r["cpu_ms_per_accepted_post"]
        loaders = sum(v for k, v in per.items() if k.startswith("loader-"))
        stack = sum(v for k, v in per.items() if not k.startswith("loader-"))
        lat = r["latency_ms"]
        lines.append(
            f"| {r['planner']} | {r['clients']} ({r['processes']}) | {r['accepted_per_second']:.0f}"
            f" | {lat['p50']} | {lat['p95']} | {lat['p99']} | {r['errors'] or 0}"
            f" | {per.get('gateway', 0):.2f} | {stack:.2f} | {loaders:.2f}"
            f" | {r['machine_busy_fraction']:.0%} |"
        )
    names = sorted({k for r in data["results"] for k in r["cpu_seconds"]})
    lines += ["", "CPU seconds in the window, by process:", ""]
    lines.append("| process | " + " | ".join(f"planner {r['planner']}" for r in data["results"]) + " |")
    lines.append("|---|" + "---:|" * len(data["results"]))
    for name in names:
        lines.append(
            f"| {name} | "
            + " | ".join(f"{r['cpu_seconds'].get(name, 0):.1f}" for r in data["results"])
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    environment = report.environment()
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    env = {"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", **LOAD_TEST_LIMITS}
    with (workdir / "stack-console.log").open("w") as console:
        stack = Stack(workdir / "data", default_services(free_ports=True), console=console, env=env)
        try:
            stack.start()
            tokens = [asyncio.run(sign_up(stack.gateway_url)) for _ in range(max(1, args.users))]
            results = []
            for planner in args.phases:
                print(f"planner {planner}: {args.clients} clients, {args.seconds:g} s window", flush=True)
                results.append(measure_phase(stack, tokens, args, planner))
                print(
                    {k: results[-1][k] for k in ("accepted_per_second", "latency_ms", "errors")}, flush=True
                )
        finally:
            stack.hurry()  # the planner may hold a backlog of thousands of plans: no drain
            stack.stop()
    data = {
        "benchmark": "gateway accepted POST /api/v1/plans per second, publish acknowledged (issue #13)",
        "recorded_at": stamp,
        "command": "uv run python -m bench.gateway.posts "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment,
        "target_per_second": TARGET,
        "results": results,
        "logs": str(workdir),
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gateway-posts-{stamp}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(data))
    print(path.with_suffix(".md").read_text())
    print(f"written: {path} (+ .md)")
    return path


if __name__ == "__main__":
    main()
