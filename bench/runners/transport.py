"""LLM transport at concurrency: calls/s of the runner's LlmClient (litellm -> OpenAI provider
-> HTTP) against the stub answering after a fixed latency, for N calls in flight in one
process, with litellm's default transport (aiohttp under an httpx facade) and with plain
httpx (`litellm.disable_aiohttp_transport = True`). Each variant runs in a fresh process.

Why: one httpx.AsyncClient under many concurrent requests degrades badly (ARCHITECTURE §4:
its pool assigns requests to connections in O(N^2)); litellm sits on httpx unless its aiohttp
transport is used. Prints JSON lines and writes reports/bench/runners-transport-<ts>.{json,md}.

  uv run python bench/runners/transport.py [--in-flight 8,32,64,128] [--latency-ms 500]
      [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "services" / "agent-runner" / "tests" / "support" / "openai_stub.py"
MESSAGES = [
    {"role": "system", "content": "agent: nobody\n\nYou are a travel agent." + " rules" * 300},
    {"role": "user", "content": "Plan a trip to Lisbon." + " data" * 600},
]


async def measure(api_base: str, in_flight: int, seconds: float, disable_aiohttp: bool) -> dict[str, Any]:
    """Runs in the child process: `in_flight` workers calling back to back for `seconds`."""
    from tripmesh_agent_runner.llm.litellm_client import LitellmClient

    client = LitellmClient(register_local_model=False)
    client.litellm.disable_aiohttp_transport = disable_aiohttp

    async def call() -> None:
        await client.complete(model="openai/stub", messages=MESSAGES, tools=None, temperature=None,
                              max_tokens=256, timeout=60, api_base=api_base)  # fmt: skip

    for _ in range(3):
        await call()  # warm: clients built, imports done
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await call()
            done += 1

    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    return {
        "transport": "httpx" if disable_aiohttp else "aiohttp (litellm default)",
        "in_flight": in_flight,
        "calls_per_second": round(done / wall, 1),
        "cpu_ms_per_call": round(cpu / max(done, 1) * 1000, 1),
        "ceiling_calls_per_second": round(in_flight / 0.001 / float(os.environ["STUB_LATENCY_MS"]), 1),
    }


def child(args: argparse.Namespace) -> None:
    os.environ["OPENAI_API_KEY"] = "sk-bench-not-a-real-key"
    result = asyncio.run(measure(args.api_base, args.child_in_flight, args.seconds, args.httpx))
    print(json.dumps(result), flush=True)


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every process: the machine is shared)."""
    import psutil

    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def parent(args: argparse.Namespace) -> None:
    from tripmesh_devstack.ports import free_port

    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, str(STUB), "--port", str(port), "--latency-ms", str(args.latency_ms)],
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    results = []
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/_stub/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        for use_httpx in (False, True):
            for in_flight in [int(n) for n in args.in_flight.split(",")]:
                flags = ["--httpx"] if use_httpx else []
                api_base = f"http://127.0.0.1:{port}/v1"
                argv = [sys.executable, __file__, "--child-in-flight", str(in_flight)]
                argv += ["--seconds", str(args.seconds), "--api-base", api_base, *flags]
                env = {**os.environ, "STUB_LATENCY_MS": str(args.latency_ms)}
                busy0, wall0 = machine_busy(), time.monotonic()
                out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
                busy = (machine_busy() - busy0) / ((time.monotonic() - wall0) * (os.cpu_count() or 1))
                result = json.loads(out.strip().splitlines()[-1]) | {"machine_busy_fraction": round(busy, 2)}
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        stub.send_signal(signal.SIGTERM)
        stub.wait(10)
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out_dir = ROOT / "reports" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"runners-transport-{started}.json"
    path.write_text(
        json.dumps({"latency_ms": args.latency_ms, "seconds": args.seconds, "results": results}, indent=2)
    )
    lines = [
        "# LLM transport at concurrency (one process, litellm -> stub)",
        "",
        f"Stub latency {args.latency_ms:g} ms, {args.seconds:g} s per point, {os.cpu_count()} CPUs.",
        "",
        "| transport | in flight | calls/s | ceiling (in flight / latency) | CPU ms per call "
        "| machine busy (anyone's) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['transport']} | {r['in_flight']} | {r['calls_per_second']} "
            f"| {r['ceiling_calls_per_second']} | {r['cpu_ms_per_call']} | {r['machine_busy_fraction']:.0%} |"
            for r in results
        ),
    ]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", default="8,32,64,128")
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--child-in-flight", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--api-base", help=argparse.SUPPRESS)
    parser.add_argument("--httpx", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_in_flight:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
