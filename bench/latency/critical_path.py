"""Where one plan's time goes, POST to terminal SSE event, read from its trace.

The stack starts as `make up` starts it, with tracing on (OTLP/HTTP to a receiver run here)
and the agents on the bench's OpenAI-compatible stub at 0 ms (bench/stack/llm_server.py), the
LLM cache off. One user submits N plans one after another. For each plan, every span of its
trace is clipped to [POST sent, terminal event read] and the window is split into:

- each service's busy time: the union of that service's spans (SQL statements included);
- `nothing traced`: instants no span covers - messages waiting in JetStream or in a pull
  request, the SSE hop to the client, event-loop queueing, process start of work.

Services overlap (a planner span can be open while a runner works), so the busy times may sum
to more than the window; `nothing traced` is exact. The second table ranks span names by the
time they cover on their own (their union across the plan), which points at the hot spots.
Tracing costs CPU (README, Traces): the absolute times are somewhat higher than untraced.

    uv run python bench/latency/critical_path.py --plans 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from httpx_sse import aconnect_sse  # noqa: E402
from otlp_receiver import OtlpReceiver, ReceivedSpan  # noqa: E402
from tripmesh_devstack.services import LOAD_TEST_LIMITS, default_services  # noqa: E402
from tripmesh_devstack.supervisor import Stack  # noqa: E402

from bench.stack.llm_server import LlmServer  # noqa: E402
from bench.stack.workload import TERMINAL, plan_body, sign_up  # noqa: E402

REPORTS = ROOT / "reports" / "bench"
Interval = tuple[int, int]


def union_ns(intervals: list[Interval]) -> int:
    total, end = 0, -1
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


async def one_plan(http: httpx.AsyncClient, token: str, n: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    started = time.time_ns()
    r = await http.post("/api/v1/plans", json=plan_body(n), headers=auth)
    r.raise_for_status()
    plan_id = r.json()["id"]
    accepted = time.time_ns()
    async with aconnect_sse(http, "GET", f"/api/v1/plans/{plan_id}/events", headers=auth) as source:
        async for sse in source.aiter_sse():
            if sse.event in TERMINAL:
                return {"plan_id": plan_id, "start": started, "accepted": accepted, "end": time.time_ns()}
    raise RuntimeError(f"plan {plan_id}: the stream ended without a terminal event")


def plan_spans(spans: list[ReceivedSpan], plan_id: str) -> list[ReceivedSpan]:
    traces = {
        s.trace_id
        for s in spans
        if s.name.startswith("planner.command") and s.attributes.get("plan_id") == plan_id
    }
    return [s for s in spans if s.trace_id in traces]


def breakdown(spans: list[ReceivedSpan], run: dict[str, Any]) -> dict[str, Any]:
    lo, hi = run["start"], run["end"]
    clipped = [(s, max(s.start_ns, lo), min(s.end_ns, hi)) for s in spans]
    clipped = [(s, a, b) for s, a, b in clipped if b > a]
    by_service: dict[str, list[Interval]] = defaultdict(list)
    by_name: dict[str, list[Interval]] = defaultdict(list)
    statements: dict[str, int] = defaultdict(int)
    for s, a, b in clipped:
        statement = s.attributes.get("db.statement") or s.attributes.get("db.query.text")
        if statement:
            statements[f"{s.service}: {' '.join(str(statement).split())[:90]}"] += 1
        by_service[s.service].append((a, b))
        name = "SQL" if s.attributes.get("db.system") or s.attributes.get("db.system.name") else s.name
        by_name[f"{s.service}: {name}"].append((a, b))
    window = hi - lo
    traced = union_ns([(a, b) for _, a, b in clipped])
    return {
        "window_ms": window / 1e6,
        "accepted_ms": (run["accepted"] - lo) / 1e6,
        "untraced_ms": (window - traced) / 1e6,
        "services_ms": {k: union_ns(v) / 1e6 for k, v in by_service.items()},
        "names_ms": {k: union_ns(v) / 1e6 for k, v in by_name.items()},
        "spans": len(clipped),
        "statements": statements,
    }


def median_of(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    keys = {k for r in rows for k in r[key]}
    return {k: statistics.median(r[key].get(k, 0.0) for r in rows) for k in keys}


def markdown(result: dict[str, Any]) -> str:
    rows = result["plans"]
    lines = [
        f"# One plan's time, from its trace ({result['when']})",
        "",
        f"`{result['command']}` - {len(rows)} plans one after another, 0 ms stub LLM, tracing on;"
        f" load average before: {result['load_before']}.",
        "",
        f"Median POST -> terminal event: **{statistics.median(r['window_ms'] for r in rows):.0f} ms**"
        f" (POST answered after {statistics.median(r['accepted_ms'] for r in rows):.0f} ms);"
        f" nothing traced: **{statistics.median(r['untraced_ms'] for r in rows):.0f} ms**;"
        f" {statistics.median(r['spans'] for r in rows):.0f} spans per plan.",
        "",
        "| service | busy ms (median) |",
        "|---|---:|",
    ]
    for k, v in sorted(median_of(rows, "services_ms").items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:.0f} |")
    lines += ["", "| span (service: name) | covers ms (median) |", "|---|---:|"]
    for k, v in sorted(median_of(rows, "names_ms").items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"| {k} | {v:.1f} |")
    lines += ["", "| SQL statement (service: first 90 characters) | per plan (median) |", "|---|---:|"]
    counts = median_of(rows, "statements")
    lines.append(f"| **all statements** | {sum(counts.values()):.0f} |")
    for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:25]:
        lines.append(f"| `{k}` | {v:.0f} |")
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import os

    load_before = os.getloadavg()[0]
    with OtlpReceiver() as receiver, tempfile.TemporaryDirectory(prefix="critical-path-") as tmp:
        llm = LlmServer(latency_ms=0)
        llm.start()
        console = (Path(tmp) / "console.log").open("w")
        services = default_services(free_ports=True, env={"agent-runner": llm.agent_env()})
        env = {
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            **LOAD_TEST_LIMITS,
        }
        stack = Stack(Path(tmp) / "data", services, console=console, env=env)
        try:
            stack.start()
            token = await sign_up(stack.gateway_url)
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
                await one_plan(http, token, 0)  # warm-up: first imports, connections, caches
                runs = [await one_plan(http, token, n) for n in range(1, args.plans + 1)]
            await asyncio.sleep(3)  # the exporters' last batches
            spans = receiver.spans()
        finally:
            stack.stop()
            llm.stop()
            console.close()
    plans = [breakdown(plan_spans(spans, r["plan_id"]), r) for r in runs]
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "uv run python bench/latency/critical_path.py " + " ".join(sys.argv[1:]),
        "load_before": round(load_before, 2),
        "plans": plans,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plans", type=int, default=10)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "critical-path.json").write_text(json.dumps(result, indent=2))
    md = markdown(result)
    (REPORTS / "critical-path.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
