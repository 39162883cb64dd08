"""`make bench`: the stack end to end, over its public API, at several loads and LLM latencies.

    uv run python -m bench.stack [--clients 1,4,16,64] [--rates 0.5,1,2] [--latencies-ms 0,500]
        [--warmup-seconds 15] [--window-seconds 60] [--systems tripmesh,control]

For each system (`tripmesh`: the stack as `make up` starts it; `control`: the same planner
graph and agents in one process, bench/stack/control): start it cold, stop it, start it warm
(both timed to every /readyz 200), sign users up, then for each LLM latency, each closed-loop
client count and each open-loop rate, measure one point (loops.py). With both systems the
report's headline is each point's ratio tripmesh / control (report.ratios). Writes
reports/bench/stack-<ts>.{json,md} and prints the Markdown. A measurement, never a test:
nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stack import loops, meters, report
from bench.stack.llm_server import LlmServer
from bench.stack.systems import SYSTEMS, System
from bench.stack.workload import create_user, log_in

ROOT = Path(__file__).resolve().parents[2]


def _numbers(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.stack", description=__doc__.splitlines()[0])
    p.add_argument("--systems", default="tripmesh", help=f"comma-separated, of {sorted(SYSTEMS)} (tripmesh)")
    p.add_argument("--clients", default="1,4,16,64", help="closed-loop client counts (1,4,16,64)")
    p.add_argument("--rates", default="0.5,1,2", help="open-loop arrivals per second; '' for none (0.5,1,2)")
    p.add_argument("--latencies-ms", default="0,500", help="LLM latencies, one set of points each (0,500)")
    p.add_argument("--warmup-seconds", type=float, default=15.0, help="load before each window (15)")
    p.add_argument("--window-seconds", type=float, default=60.0, help="measured window per point (60)")
    p.add_argument("--max-plans", type=int, default=None, help="end a window once this many plans ended")
    p.add_argument("--drain-seconds", type=float, default=300.0, help="wait for plans in flight after (300)")
    p.add_argument("--users", type=int, default=8, help="users the clients share (8)")
    p.add_argument("--runner-concurrency", type=int, default=None, help="AGENT_RUNNER_CONCURRENCY (default)")
    p.add_argument("--no-warm-restart", dest="warm_restart", action="store_false", help="skip the warm start")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "bench", help="report directory")
    args = p.parse_args(argv)
    args.system_names = [s for s in str(args.systems).split(",") if s.strip()]
    unknown = [s for s in args.system_names if s not in SYSTEMS]
    if unknown or not args.system_names:
        p.error(f"unknown systems {unknown}; known: {sorted(SYSTEMS)}")
    args.latencies = _numbers(args.latencies_ms)
    closed = [loops.PointSpec(0, "closed", int(c)) for c in _numbers(args.clients)]
    opened = [loops.PointSpec(0, "open", r) for r in _numbers(args.rates)]
    args.points = [replace(pt, latency_ms=ms) for ms in args.latencies for pt in closed + opened]
    if not args.points or any(pt.load <= 0 for pt in args.points):
        p.error("at least one point, with positive client counts and rates")
    return args


async def measure_system(system: System, llm: LlmServer, args: argparse.Namespace) -> list[dict[str, Any]]:
    users = max(1, min(args.users, max(int(pt.load) for pt in args.points)))
    emails = [await create_user(system.url) for _ in range(users)]
    timing = loops.Timing(args.warmup_seconds, args.window_seconds, args.max_plans, args.drain_seconds)
    results = []
    for spec in args.points:
        print(f"[{system.name}] {spec.label}: warm-up {timing.warmup_seconds:g} s, window", flush=True)
        # fresh tokens per point: an access token lives 15 minutes, and a whole run is longer
        # (signed up once, the 500 ms open-loop points got only 401s)
        tokens = [await log_in(system.url, email) for email in emails]
        result = await loops.measure(system, llm, spec, tokens, timing)
        print(
            json.dumps(
                {
                    k: result[k]
                    for k in (
                        "plans",
                        "statuses",
                        "plans_per_second",
                        "latency_seconds",
                        "errors",
                        "error_kinds",
                    )
                }
            )
        )
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    environment = report.environment()
    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    llm = LlmServer(args.latencies[0])
    llm.start()
    startup: dict[str, dict[str, float]] = {}
    at_rest: dict[str, dict[str, float]] = {}
    pss_at_rest: dict[str, dict[str, float]] = {}
    results: list[dict[str, Any]] = []
    try:
        for name in args.system_names:
            (workdir / name).mkdir()
            system = SYSTEMS[name](workdir / name, llm, args)
            try:
                print(f"[{name}] starting (logs in {workdir / name})", flush=True)
                startup[name] = {k: round(v, 2) for k, v in system.start().items()}
                rest = meters.memory_bytes(system.pids())
                at_rest[name] = {k: round(v[0] / 2**20, 1) for k, v in sorted(rest.items())}
                pss_at_rest[name] = {k: round(v[1] / 2**20, 1) for k, v in sorted(rest.items())}
                print(f"[{name}] ready: {startup[name]} s", flush=True)
                results += asyncio.run(measure_system(system, llm, args))
            finally:
                system.stop()
    finally:
        llm.stop()
    data = {
        "benchmark": "make bench: the stack end to end (issue #13)",
        "recorded_at": stamp,
        "command": report.command_line(argv),
        "environment": environment,
        "setup": {
            "systems": args.system_names,
            "llm": "OpenAI-compatible stub (services/agent-runner/tests/support/openai_stub.py) via litellm",
            "llm_cache": "off",
            "latencies_ms": args.latencies,
            "warmup_seconds": args.warmup_seconds,
            "window_seconds": args.window_seconds,
            "max_plans": args.max_plans,
            "users": args.users,
            "runner_concurrency": args.runner_concurrency,
            "control": "bench/stack/control: the planner graph and agents in one FastAPI process, LangGraph's"
            " Postgres checkpointer (durability sync) in its own embedded Postgres; no ledger, no vector"
            " indexing, events in memory"
            if "control" in args.system_names
            else "not measured (--systems tripmesh,control measures it)",
        },
        "startup_seconds": startup,
        "rss_at_rest_mb": at_rest,
        "pss_at_rest_mb": pss_at_rest,
        "results": results,
        "ratios": report.ratios(results),
        "logs": str(workdir),
    }
    path = report.write(data, args.out)
    print(path.with_suffix(".md").read_text())
    print(f"written: {path} (+ .md)")
    return path
