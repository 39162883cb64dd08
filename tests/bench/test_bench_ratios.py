"""The bench's headline: each point of tripmesh divided by the same point of the control.

(The control's run through the harness is in test_stack_smoke.py, one run of both systems.)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `bench` is a directory of scripts, importable from the root

from bench.stack import report  # noqa: E402


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
