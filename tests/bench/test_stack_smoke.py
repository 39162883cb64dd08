"""`make bench` cannot rot: its harness (bench/stack) run for a few plans at 1 client, 0 ms,
through both systems it compares: tripmesh as `make up` starts it, and the control
(bench/stack/control: the planner graph and agents in one process behind the same API).

One run of both (`--systems tripmesh,control`, as `make bench` runs them) is the suite's one
bench smoke. It asserts only that the report is written with its fields, that the plans
reached a terminal event and that the headline ratio row exists - never a speed (speed is
what `make bench` reports, not what a test asserts).
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
TERMINAL = {"completed", "partial", "failed", "cancelled"}


def test_a_few_plans_through_both_systems_write_a_complete_report(tmp_path: Path) -> None:
    argv = ["--systems", "tripmesh,control", "--clients", "1", "--rates", "", "--latencies-ms", "0"]
    argv += ["--warmup-seconds", "0"]
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

    md = path.with_suffix(".md").read_text()
    assert "| control | 0 | 1 clients | 3 |" in md
    assert report["setup"]["systems"] == ["tripmesh", "control"]
    assert "checkpointer" in report["setup"]["control"]
    assert report["startup_seconds"]["control"]["cold"] > 0
    assert {"control", "postgres"} <= set(report["pss_at_rest_mb"]["control"])

    points = {p["system"]: p for p in report["results"]}
    assert set(points) == {"tripmesh", "control"} and len(report["results"]) == 2
    point = points["tripmesh"]
    assert point["mode"] == "closed" and point["clients"] == 1
    assert point["plans"] == 3 and point["errors"] == 0, point["error_kinds"]
    assert sum(point["statuses"].values()) == 3
    assert set(point["statuses"]) <= TERMINAL
    assert point["llm_calls"] > 0  # the agents reached the bench's LLM server through litellm
    assert {"p50", "p95", "p99"} <= set(point["latency_seconds"])
    assert point["latency_seconds"]["p99"] is not None
    watched = SERVICES | {"nats", "postgres", "llm-server", "bench-client"}
    assert watched <= set(point["cpu_seconds_per_plan"])
    assert watched <= set(point["peak_rss_mb"]) and watched <= set(point["peak_pss_mb"])
    assert point["stack_cpu_seconds_per_plan"] is not None

    control = points["control"]
    assert control["plans"] == 3 and control["errors"] == 0, control["error_kinds"]
    assert set(control["statuses"]) <= TERMINAL and sum(control["statuses"].values()) == 3
    assert control["llm_calls"] > 0  # the in-process agents reached the LLM server via litellm
    assert control["latency_seconds"]["p99"] is not None
    assert {"control", "postgres", "llm-server", "bench-client"} <= set(control["cpu_seconds_per_plan"])
    assert control["stack_cpu_seconds_per_plan"] is not None

    (row,) = report["ratios"]  # the headline: the one point, tripmesh / control
    assert row["load"] == 1 and row["ratio"]["plans_per_second"] is not None
