"""`make bench` cannot rot: its harness (bench/stack) run for a few plans at 1 client, 0 ms.

Asserts only that the report is written with its fields and that the plans reached a terminal
event - never a speed (speed is what `make bench` reports, not what a test asserts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `bench` is a directory of scripts, importable from the root

from bench.stack import run  # noqa: E402

pytestmark = pytest.mark.e2e

SERVICES = {"gateway", "planner", "agent-runner", "cost-ledger", "vector-sync"}


def test_a_few_plans_through_the_bench_write_a_complete_report(tmp_path: Path) -> None:
    argv = ["--clients", "1", "--rates", "", "--latencies-ms", "0", "--warmup-seconds", "0"]
    argv += ["--window-seconds", "240", "--max-plans", "3", "--no-warm-restart", "--out", str(tmp_path)]
    path = run.main(argv)

    report = json.loads(path.read_text())
    assert path.name.startswith("stack-") and path.with_suffix(".md").is_file()
    assert "| tripmesh | 0 | 1 clients | 3 |" in path.with_suffix(".md").read_text()
    assert report["command"].startswith("uv run python -m bench.stack")
    assert {"git_commit", "python", "nats_server"} <= set(report["environment"]["versions"])
    assert {"cpus", "loadavg_before"} <= set(report["environment"]["machine"])
    assert report["startup_seconds"]["tripmesh"]["cold"] > 0
    assert SERVICES | {"nats", "postgres"} <= set(report["rss_at_rest_mb"]["tripmesh"])
    assert SERVICES | {"nats", "postgres"} <= set(report["pss_at_rest_mb"]["tripmesh"])

    (point,) = report["results"]
    assert point["system"] == "tripmesh" and point["mode"] == "closed" and point["clients"] == 1
    assert point["plans"] == 3 and point["errors"] == 0, point["error_kinds"]
    assert sum(point["statuses"].values()) == 3
    assert set(point["statuses"]) <= {"completed", "partial", "failed", "cancelled"}
    assert point["llm_calls"] > 0  # the agents reached the bench's LLM server through litellm
    assert {"p50", "p95", "p99"} <= set(point["latency_seconds"])
    assert point["latency_seconds"]["p99"] is not None
    watched = SERVICES | {"nats", "postgres", "llm-server", "bench-client"}
    assert watched <= set(point["cpu_seconds_per_plan"])
    assert watched <= set(point["peak_rss_mb"]) and watched <= set(point["peak_pss_mb"])
    assert point["stack_cpu_seconds_per_plan"] is not None
