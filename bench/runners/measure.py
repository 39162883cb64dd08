"""Measure agent-runner scaling (issue #5): plans/s for 1, 2 and 4 runner replicas, with an
OpenAI-compatible stub model answering every call after a fixed latency (500 ms).
Writes reports/bench/runners-<timestamp>.{json,md}.

  uv run python bench/runners/measure.py [--replicas 1,2,4] [--in-flight 32]
      [--latency-ms 500] [--concurrency 2] [--warmup-seconds 30] [--window-seconds 60]

What it does:
1. starts the stub (services/agent-runner/tests/support/openai_stub.py) as its own process:
   it answers `/v1/chat/completions` like the deterministic local model (tool calls, then
   the agent's JSON), after `--latency-ms`;
2. starts the whole stack as `make up` does (tripmesh_devstack's Stack: embedded NATS and
   Postgres, the five services as processes), every agent on `openai/stub` through litellm
   over HTTP, the shared cache OFF (identical plans would hit it), the stub priced at 0
   (a self-hosted model; the ledger's spend caps stay on), LOG_LEVEL=WARNING everywhere;
3. for each replica count in order (scaling the runner with `Stack.add_replica`, or down by
   SIGTERM; a repeated count at the end shows how much the machine drifted): a closed loop of
   `--in-flight` plans - each worker creates a plan through the public API, reads its SSE
   stream to the terminal event, and creates the next. After `--warmup-seconds`, plans that
   end within `--window-seconds` are counted: plans/s = ended / window. LLM calls/s come from
   the stub's call counter; CPU seconds per process (services, NATS, Postgres, stub, this
   client) over the window show where the time goes.

`--concurrency` is AGENT_RUNNER_CONCURRENCY (jobs in flight per agent type per replica). At
the default 8 one replica can hold more LLM calls than this 2-core machine can push plans
through the planner, so replicas could not show; 2 makes a replica's capacity the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from httpx_sse import aconnect_sse
from tripmesh_contracts.plans import AgentName
from tripmesh_devstack.ports import free_port
from tripmesh_devstack.services import LOAD_TEST_LIMITS, default_services
from tripmesh_devstack.supervisor import Stack

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "services" / "agent-runner" / "tests" / "support" / "openai_stub.py"
CPUS = os.cpu_count() or 1
TERMINAL = {"completed", "partial", "failed", "cancelled"}
DESTINATIONS = [
    ["Lisbon", "Porto"],
    ["Madrid", "Seville"],
    ["Rome", "Milan"],
    ["Paris"],
    ["Vienna", "Prague"],
]


def plan_body(n: int) -> dict[str, Any]:
    day = 1 + n % 20
    return {
        "title": f"Bench trip {n}",
        "description": "Food, museums and old towns",
        "destinations": DESTINATIONS[n % len(DESTINATIONS)],
        "origin": "London",
        "start_date": f"2027-09-{day:02d}",
        "end_date": f"2027-09-{day + 4:02d}",
        "budget_total": 20000,  # within budget: no options re-runs, 14 LLM calls a plan
        "budget_currency": "EUR",
        "traveler_count": 2,
        "preferences": {"interests": ["food", "history"]},
        "constraints": {},
    }


def runner_env(stub_url: str, concurrency: int) -> dict[str, str]:
    env = {
        "OPENAI_API_KEY": "sk-bench-not-a-real-key",
        "AGENT_RUNNER_CACHE_ENABLED": "false",
        "AGENT_RUNNER_CONCURRENCY": str(concurrency),
        "AGENT_RUNNER_FALLBACK_INPUT_PRICE_PER_1K": "0",
        "AGENT_RUNNER_FALLBACK_OUTPUT_PRICE_PER_1K": "0",
    }
    for agent in AgentName:
        env[f"{agent.value.upper()}_AGENT_MODEL"] = "openai/stub"
        env[f"{agent.value.upper()}_AGENT_API_BASE"] = stub_url
    return env


@dataclass
class Phase:
    replicas: int
    ordinal: int
    window_seconds: float
    ended: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    llm_calls: int = 0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    machine_busy_seconds: float = 0.0
    profile_files: dict[str, Path] = field(default_factory=dict)
    """CPU seconds every process on the machine used in the window (ours and anyone's)."""

    @property
    def plans_per_second(self) -> float:
        return sum(self.ended.values()) / self.window_seconds

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

        return {
            "replicas": self.replicas,
            "plans_per_second": round(self.plans_per_second, 3),
            "plans_ended": dict(self.ended),
            "plan_seconds_p50": pct(0.5),
            "plan_seconds_p95": pct(0.95),
            "llm_calls_per_second": round(self.llm_calls / self.window_seconds, 1),
            "llm_calls_per_plan": round(self.llm_calls / max(1, sum(self.ended.values())), 1),
            "cpu_seconds_in_window": {k: round(v, 1) for k, v in sorted(self.cpu_seconds.items())},
            "cpu_busy_fraction_of_2_cores": round(
                sum(self.cpu_seconds.values()) / (2 * self.window_seconds), 2
            ),
            "machine_busy_fraction": round(self.machine_busy_seconds / (CPUS * self.window_seconds), 2),
            "other_processes_cpu_seconds": round(
                self.machine_busy_seconds - sum(self.cpu_seconds.values()), 1
            ),
            "py_spy": {
                name: summarize_profile(path) for name, path in self.profile_files.items() if path.exists()
            },
        }


class CpuMeter:
    """CPU seconds by process name over a window, for every process in our tree."""

    def __init__(self, stack: Stack, stub_pid: int) -> None:
        self.stack = stack
        self.stub_pid = stub_pid

    def names(self) -> dict[int, str]:
        names = {os.getpid(): "bench-client", self.stub_pid: "openai-stub"}
        for replica in self.stack.all_replicas():
            if replica.proc is not None and replica.running:
                names[replica.proc.pid] = replica.spec.name
        return names

    def sample(self) -> dict[str, float]:
        names = self.names()
        totals: Counter[str] = Counter()
        for proc in [psutil.Process(os.getpid()), *psutil.Process(os.getpid()).children(recursive=True)]:
            try:
                cpu = proc.cpu_times()
                name = names.get(proc.pid) or ("postgres" if "postgres" in proc.name() else proc.name())
            except psutil.Error:
                continue
            totals[name] += cpu.user + cpu.system
        return dict(totals)


def scale_runners(stack: Stack, count: int) -> None:
    """Exactly `count` runner replicas running: SIGTERM (drain) the newest extra ones, restart
    stopped ones, add new ones."""
    replicas = stack.replicas["agent-runner"]
    running = [r for r in replicas if r.running]
    while len(running) > count:
        stack.terminate("agent-runner", running.pop().index)
    for replica in replicas:
        if len(running) < count and not replica.running:
            stack.start_replica("agent-runner", replica.index)
            running.append(replica)
    while len(running) < count:
        running.append(stack.replica("agent-runner", stack.add_replica("agent-runner")))


def start_profilers(stack: Stack, phase: Phase, seconds: float) -> list[subprocess.Popen[bytes]]:
    """py-spy (fetched by uvx, not a project dependency) on the planner and runner replica 0.
    `--gil`: only samples of a thread holding the GIL, i.e. Python actually running (idle pool
    threads would otherwise dominate: py-spy cannot tell them idle in this container)."""
    if seconds <= 0:
        return []
    out = ROOT / "reports" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for name in ("planner", "agent-runner"):
        pid = stack.pid(name, 0)
        if pid is None:
            continue
        path = out / f"runners-py-spy-{name}-phase{phase.ordinal}-{phase.replicas}x.txt"
        phase.profile_files[name] = path
        argv = ["uvx", "--from", "py-spy", "py-spy", "record", "--gil", "--format", "raw", "--rate", "50",
                "--duration", str(int(seconds)), "--pid", str(pid), "--output", str(path)]  # fmt: skip
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def package_of(frame: str) -> str:
    """`func (path:line)` -> the package the code belongs to (site-packages name, tripmesh
    module, or the stdlib module)."""
    path = frame[frame.rfind("(") + 1 :].rsplit(":", 1)[0]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/tripmesh_" in path:
        return "tripmesh_" + path.split("/tripmesh_", 1)[1].split("/", 1)[0]
    return "stdlib:" + Path(path).stem if path.startswith("/") else path


def summarize_profile(path: Path, top: int = 8) -> dict[str, Any]:
    """Where a process spent its CPU: samples by the package of the innermost frame, and by
    the innermost non-stdlib package on the stack (whose work the stdlib was doing)."""
    leaf: Counter[str] = Counter()
    owner: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        packages = [package_of(f) for f in stack_text.split(";")]
        total += count
        leaf[packages[-1]] += count
        named = [p for p in packages if not p.startswith("stdlib:")]
        owner[named[-1] if named else packages[-1]] += count

    def share(counter: Counter[str]) -> dict[str, float]:
        return {k: round(v / max(total, 1), 3) for k, v in counter.most_common(top)}

    return {"samples": total, "innermost_package": share(leaf), "innermost_named_package": share(owner)}


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all cores)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


async def stub_calls(http: httpx.AsyncClient, url: str) -> int:
    return int((await http.get(url + "/_stub/health")).json()["calls"])


async def login(http: httpx.AsyncClient, n: int) -> dict[str, str]:
    email, password = f"bench{n}-{int(time.time())}@example.com", f"bench-passphrase-{n}-long"
    r = await http.post(
        "/api/v1/auth/signup",
        json={
            "email": email,
            "username": email.split("@")[0],
            "password": password,
            "password_confirm": password,
        },
    )
    r.raise_for_status()
    r = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def one_plan(http: httpx.AsyncClient, auth: dict[str, str], n: int) -> tuple[str, float]:
    started = time.monotonic()
    r = await http.post("/api/v1/plans", json=plan_body(n), headers=auth)
    if r.status_code != 202:
        raise RuntimeError(f"POST /api/v1/plans answered {r.status_code}: {r.text[:500]}")
    plan_id = r.json()["id"]
    status = "unknown"
    async with aconnect_sse(http, "GET", f"/api/v1/plans/{plan_id}/events", headers=auth, timeout=600) as sse:
        async for event in sse.aiter_sse():
            if event.event in TERMINAL:
                status = event.event
                break
    return status, time.monotonic() - started


async def closed_loop(
    stack: Stack,
    users: list[dict[str, str]],
    phase: Phase,
    in_flight: int,
    warmup: float,
    stub_url: str,
    meter: CpuMeter,
    profile_seconds: float,
) -> None:
    counter = iter(range(10**9))
    stop = asyncio.Event()
    window: dict[str, float] = {}

    async def worker(http: httpx.AsyncClient, index: int) -> None:
        while not stop.is_set():
            status, seconds = await one_plan(http, users[index % len(users)], next(counter))
            ended = time.monotonic()
            if "start" in window and ended <= window.get("end", float("inf")):
                phase.ended[status] += 1
                phase.latencies.append(seconds)

    limits = httpx.Limits(max_connections=in_flight * 2 + 8, max_keepalive_connections=in_flight * 2 + 8)
    # several clients: many requests through one httpx.AsyncClient degrade (ARCHITECTURE §4)
    clients = [httpx.AsyncClient(base_url=stack.gateway_url, timeout=600, limits=limits) for _ in range(8)]
    tasks = [asyncio.create_task(worker(clients[i % len(clients)], i)) for i in range(in_flight)]
    async with httpx.AsyncClient(timeout=10) as probe:
        await asyncio.sleep(warmup)
        calls0, cpu0, machine0 = await stub_calls(probe, stub_url), meter.sample(), machine_busy()
        window["start"] = time.monotonic()
        profilers = start_profilers(stack, phase, profile_seconds)
        await asyncio.sleep(phase.window_seconds)
        window["end"] = time.monotonic()
        calls1, cpu1, machine1 = await stub_calls(probe, stub_url), meter.sample(), machine_busy()
        for proc in profilers:
            await asyncio.to_thread(proc.wait, 60)
    phase.machine_busy_seconds = machine1 - machine0
    phase.llm_calls = calls1 - calls0
    phase.cpu_seconds = {k: cpu1.get(k, 0.0) - cpu0.get(k, 0.0) for k in cpu1}
    stop.set()  # let the plans in flight end before the next phase
    await asyncio.wait_for(asyncio.gather(*tasks), 600)
    for client in clients:
        await client.aclose()


def write_reports(args: argparse.Namespace, phases: list[Phase], started: str) -> Path:
    out = ROOT / "reports" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    base = phases[0].plans_per_second or float("nan")
    results = [p.summary() | {"scaling_vs_1": round(p.plans_per_second / base, 2)} for p in phases]
    report = {
        "benchmark": "agent-runner scaling (issue #5)",
        "recorded_at": started,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "setup": {
            "stub_latency_ms": args.latency_ms,
            "in_flight_plans": args.in_flight,
            "runner_concurrency_per_agent_type": args.concurrency,
            "warmup_seconds": args.warmup_seconds,
            "window_seconds": args.window_seconds,
            "llm_cache": "off",
            "model": "openai/stub (litellm, HTTP)",
            "log_level": "WARNING",
        },
        "results": results,
    }
    stamp = started.replace(":", "").replace("-", "")[:15]
    json_path = out / f"runners-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2))
    lines = [
        "# agent-runner scaling",
        "",
        f"{started}, {os.cpu_count()} CPUs. Stub model `openai/stub` (litellm over HTTP) answering after "
        f"{args.latency_ms:g} ms; {args.in_flight} plans in flight (closed loop through the public API); "
        f"AGENT_RUNNER_CONCURRENCY={args.concurrency}; LLM cache off; {args.window_seconds:g} s window "
        f"after {args.warmup_seconds:g} s warm-up.",
        "",
        "| runner replicas | plans/s | scaling vs 1 | LLM calls/s | plan p50 s | plan p95 s | ended "
        "| ours: CPU busy (of 2 cores) | machine busy (anyone's) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['replicas']} | {r['plans_per_second']} | {r['scaling_vs_1']} "
            f"| {r['llm_calls_per_second']} "
            f"| {r['plan_seconds_p50']} | {r['plan_seconds_p95']} | {r['plans_ended']} "
            f"| {r['cpu_busy_fraction_of_2_cores']:.0%} | {r['machine_busy_fraction']:.0%} |"
        )
    lines += [
        "",
        "The machine is shared: `machine busy` counts every process on it. When it is near 100% while",
        "ours is well below, other work took the CPU and the figures understate what the stack can do.",
        "",
        "CPU seconds per process within the window:",
        "",
    ]
    names = sorted({k for r in results for k in r["cpu_seconds_in_window"]})
    lines.append("| process | " + " | ".join(f"{r['replicas']} replica(s)" for r in results) + " |")
    lines.append("|---|" + "---|" * len(results))
    for name in names:
        lines.append(
            f"| {name} | " + " | ".join(str(r["cpu_seconds_in_window"].get(name, 0)) for r in results) + " |"
        )
    other = " | ".join(str(r["other_processes_cpu_seconds"]) for r in results)
    lines.append(f"| (other processes on the machine) | {other} |")
    for r in results:
        for name, profile in r["py_spy"].items():
            where = ", ".join(f"{k} {v:.0%}" for k, v in profile["innermost_named_package"].items())
            lines.append(
                f"\npy-spy, {name}, {r['replicas']} replica(s), {profile['samples']} samples: {where}"
            )
    json_path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return json_path


async def run(args: argparse.Namespace) -> None:
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    replica_counts = [int(n) for n in args.replicas.split(",")]
    port = free_port()
    stub = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
        [sys.executable, str(STUB), "--port", str(port), "--latency-ms", str(args.latency_ms)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    stub_url = f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(prefix="tripmesh-bench-runners-"))
    services = default_services(
        free_ports=True,
        replicas={"agent-runner": replica_counts[0]},
        env={"agent-runner": runner_env(stub_url + "/v1", args.concurrency)},
    )
    stack = Stack(
        data / "data",
        services,
        console=None,
        env={"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", **LOAD_TEST_LIMITS},
    )
    phases: list[Phase] = []
    try:
        async with httpx.AsyncClient(timeout=5) as probe:
            for _ in range(300):
                try:
                    await stub_calls(probe, stub_url)
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        print(f"stub on {stub_url}; starting the stack in {data}", flush=True)
        await asyncio.to_thread(stack.start)
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
            users = [await login(http, n) for n in range(8)]
        meter = CpuMeter(stack, stub.pid)
        for count in replica_counts:
            await asyncio.to_thread(scale_runners, stack, count)
            phase = Phase(replicas=count, ordinal=len(phases) + 1, window_seconds=args.window_seconds)
            print(
                f"{count} replica(s): warm-up {args.warmup_seconds:g} s, window {args.window_seconds:g} s",
                flush=True,
            )
            await closed_loop(
                stack, users, phase, args.in_flight, args.warmup_seconds, stub_url, meter, args.py_spy_seconds
            )
            print(json.dumps(phase.summary()), flush=True)
            phases.append(phase)
    finally:
        await asyncio.to_thread(stack.stop)
        stub.send_signal(signal.SIGTERM)
        stub.wait(10)
    path = write_reports(args, phases, started)
    print(f"\nreports: {path} and {path.with_suffix('.md')}\n")
    print(path.with_suffix(".md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--warmup-seconds", type=float, default=30.0)
    parser.add_argument("--window-seconds", type=float, default=60.0)
    parser.add_argument(
        "--py-spy-seconds",
        type=float,
        default=0.0,
        help="sample the planner and the first runner with py-spy (via uvx) this long in each window",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
