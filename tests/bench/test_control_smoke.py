"""The bench's control (bench/stack/control) cannot rot: a few plans through it, 1 client, 0 ms.

The control is tripmesh's planner graph and agents in one process behind the same API; this
runs it through the bench harness exactly as `--systems control` does and asserts only that
the plans reached a terminal event and the report has its fields - never a speed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `bench` is a directory of scripts, importable from the root

from bench.stack import report, run  # noqa: E402

TERMINAL = {"completed", "partial", "failed", "cancelled"}


@pytest.mark.e2e
def test_a_few_plans_through_the_control_write_a_complete_report(tmp_path: Path) -> None:
    argv = ["--systems", "control", "--clients", "1", "--rates", "", "--latencies-ms", "0"]
    argv += ["--warmup-seconds", "0", "--window-seconds", "240", "--max-plans", "3", "--no-warm-restart"]
    path = run.main([*argv, "--out", str(tmp_path)])

    data = json.loads(path.read_text())
    assert "| control | 0 | 1 clients | 3 |" in path.with_suffix(".md").read_text()
    assert data["setup"]["systems"] == ["control"] and "checkpointer" in data["setup"]["control"]
    assert data["startup_seconds"]["control"]["cold"] > 0
    assert {"control", "postgres"} <= set(data["pss_at_rest_mb"]["control"])
    assert data["ratios"] == []  # one system: nothing to divide by

    (point,) = data["results"]
    assert point["system"] == "control" and point["plans"] == 3 and point["errors"] == 0, point["error_kinds"]
    assert set(point["statuses"]) <= TERMINAL and sum(point["statuses"].values()) == 3
    assert point["llm_calls"] > 0  # the in-process agents reached the bench's LLM server via litellm
    assert point["latency_seconds"]["p99"] is not None
    assert {"control", "postgres", "llm-server", "bench-client"} <= set(point["cpu_seconds_per_plan"])
    assert point["stack_cpu_seconds_per_plan"] is not None


def _point(system: str, plans_per_second: float, p50: float, cpu: float | None) -> dict[str, Any]:
    return {
        "system": system, "llm_latency_ms": 500.0, "mode": "closed", "clients": 4,
        "offered_plans_per_second": None, "plans_per_second": plans_per_second,
        "latency_seconds": {"p50": p50, "p99": p50 * 2}, "stack_cpu_seconds_per_plan": cpu,
    }  # fmt: skip


def test_the_headline_divides_each_point_of_tripmesh_by_the_same_point_of_the_control() -> None:
    results = [_point("tripmesh", 3.0, 0.9, 0.2), _point("control", 2.0, 0.6, None)]
    (row,) = report.ratios(results)
    assert row["ratio"] == {"plans_per_second": 1.5, "p50": 1.5, "p99": 1.5, "cpu_seconds_per_plan": None}
    assert row["load"] == 4 and row["plans_per_second"] == [3.0, 2.0]
    assert "3.00 / 2.00 = **1.50**" in "\n".join(report.ratio_lines([row]))
    assert report.ratios([_point("tripmesh", 3.0, 0.9, 0.2)]) == []
