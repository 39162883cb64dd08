"""What tracing costs: the same workload with tracing off, then on, in one run (issue #10).

Each phase starts the stack exactly as `make up` does (bench/planner/measure.py's workload:
the deterministic offline model, runner cache off, closed-loop clients through the public
API), first with no OTLP endpoint (tracing off: nothing installed), then with
OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP receiver run in this process
(tests/e2e/otlp_receiver.py, which decodes every export request: the full exporter cost,
serialisation and HTTP included, with the SDK's default batch settings). Reported per phase:
plans/s, POST -> terminal event p50/p90, CPU seconds per process, and spans received.

A measurement, never a test. Writes reports/bench/tracing-overhead-<timestamp>.{json,md}.

    uv run python bench/tracing/overhead.py --plans 40 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "planner"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import measure as planner_bench  # noqa: E402  (bench/planner/measure.py: workload, stats)
from otlp_receiver import OtlpReceiver  # noqa: E402
from tripmesh_devstack.services import LOAD_TEST_LIMITS, default_services  # noqa: E402
from tripmesh_devstack.supervisor import Stack  # noqa: E402

REPORTS = ROOT / "reports" / "bench"


def run_phase(args: argparse.Namespace, tracing: bool, workdir: Path) -> dict[str, Any]:
    label = "on" if tracing else "off"
    phase = planner_bench.Phase(1, 1, args.plans, args.concurrency)
    env = {"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", "AGENT_RUNNER_CACHE_ENABLED": "false"}
    env |= LOAD_TEST_LIMITS
    receiver = OtlpReceiver().start() if tracing else None
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    console = (workdir / f"tracing-{label}-console.log").open("w")
    stack = Stack(workdir / f"tracing-{label}", default_services(free_ports=True), console=console, env=env)
    started = time.monotonic()
    stack.start()
    phase.stack_start_seconds = time.monotonic() - started
    print(f"[tracing {label}] stack ready in {phase.stack_start_seconds:.1f}s; measuring", flush=True)
    try:
        asyncio.run(planner_bench.measure(stack, phase, args.warmup))
    finally:
        stack.stop()  # SIGTERM: the exporters flush what is batched at exit
        console.close()
        if receiver is not None:
            receiver.stop()
    summary = {"tracing": label, **phase.summary()}
    if receiver is not None:
        spans = receiver.spans()
        summary["spans_received"] = len(spans)
        summary["traces_received"] = len({s.trace_id for s in spans})
        summary["export_requests"] = receiver.requests
    return summary


def markdown(report: dict[str, Any]) -> str:
    off, on = report["results"]
    lines = [
        f"# Tracing overhead ({report['recorded_at']})",
        "",
        f"`{report['command']}` at {report['git_commit']}, {report['machine']['cpus']} CPUs (shared"
        f" machine), load average before {report['machine']['loadavg_before']}. Offline deterministic"
        " model, runner cache off, one replica per service; latency = POST /plans -> terminal SSE"
        " event at the client. Tracing on = OTLP/HTTP to a receiver in the bench process.",
        "",
        "| tracing | plans | clients | plans/s | p50 s | p90 s | max s | spans | statuses |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        lat = r["latency_seconds"]
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        lines.append(
            f"| {r['tracing']} | {r['plans']} | {r['concurrency']} | {r['plans_per_second']:.2f} |"
            f" {lat['p50']:.2f} | {lat['p90']:.2f} | {lat['max']:.2f} | {r.get('spans_received', 0)} |"
            f" {statuses} |"
        )
    d = report["overhead"]
    lines += [
        "",
        f"Tracing on vs off: plans/s {d['plans_per_second_change_pct']:+.1f} %,"
        f" p50 {d['p50_change_pct']:+.1f} %.",
        "",
        "CPU seconds during the measured window:",
        "",
    ]
    for r in (off, on):
        top = sorted(r["cpu_seconds"].items(), key=lambda kv: -kv[1])
        lines.append(f"- tracing {r['tracing']}: " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    return "\n".join(lines) + "\n"


def change_pct(before: float, after: float) -> float:
    return round((after - before) / before * 100, 1) if before else 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=40, help="measured plans per phase (40)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients, closed loop (4)")
    parser.add_argument("--warmup", type=int, default=4, help="unmeasured plans first, per phase (4)")
    parser.add_argument("--out", type=Path, default=REPORTS, help="report directory (reports/bench)")
    args = parser.parse_args(argv)
    command = "uv run python bench/tracing/overhead.py " + " ".join(sys.argv[1:] if argv is None else argv)
    loadavg = [round(x, 2) for x in os.getloadavg()]
    workdir = Path(tempfile.mkdtemp(prefix="bench-tracing-"))
    off = run_phase(args, False, workdir)
    on = run_phase(args, True, workdir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "recorded_at": stamp,
        "command": command.strip(),
        "git_commit": planner_bench.git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_before": loadavg},
        "results": [off, on],
        "overhead": {
            "plans_per_second_change_pct": change_pct(off["plans_per_second"], on["plans_per_second"]),
            "p50_change_pct": change_pct(off["latency_seconds"]["p50"], on["latency_seconds"]["p50"]),
        },
        "logs": str(workdir),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"tracing-overhead-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    json_path.with_suffix(".md").write_text(table)
    print(table)
    print(f"written: {json_path} (+ .md)")


if __name__ == "__main__":
    main()
