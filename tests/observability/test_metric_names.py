"""Every Prometheus metric a tripmesh service registers follows the conventions of issue #10:
a `tripmesh_` name, counters in `_total`, base units, and only bounded labels (never an id)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

APPS = (
    "tripmesh_gateway.app",
    "tripmesh_planner.app",
    "tripmesh_agent_runner.app",
    "tripmesh_cost_ledger.app",
    "tripmesh_vector_sync.app",
)
UNBOUNDED_LABELS = frozenset(
    {
        "plan_id", "user_id", "job_id", "run_id", "event_id", "id", "email", "username",
        "session_id", "api_key_id", "reservation_id", "correlation_id", "trace_id", "span_id",
        "path", "url", "query", "error", "message", "ip", "client",
    }
)  # fmt: skip
NON_BASE_UNITS = ("_ms", "_milliseconds", "_micros", "_minutes", "_hours", "_days", "_kb", "_mb", "_percent")


def tripmesh_metrics() -> list[MetricWrapperBase]:
    for module in APPS:  # each service's wiring imports every module that defines a metric
        importlib.import_module(module)
    seen: dict[int, Any] = {}
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            seen[id(collector)] = collector
    return list(seen.values())


METRICS = tripmesh_metrics()


def test_every_service_registers_its_metrics() -> None:
    names = {m._name for m in METRICS}
    for expected in (
        "tripmesh_http_requests",
        "tripmesh_planner_plan_seconds",
        "tripmesh_llm_cost_usd",
        "tripmesh_ledger_events_ingested",
        "tripmesh_vector_sync_lag_seconds",
        "tripmesh_consumer_pending_messages",
        "tripmesh_dlq_messages",
        "tripmesh_budget_refusals",
    ):
        assert expected in names, f"{expected} is not registered"


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m._name)
def test_name_and_labels(metric: MetricWrapperBase) -> None:
    name, kind = metric._name, metric._type
    assert name.startswith("tripmesh_"), f"{name}: every metric name starts with tripmesh_"
    assert name == name.lower() and " " not in name
    for suffix in NON_BASE_UNITS:
        assert not name.endswith(suffix) and f"{suffix}_" not in name, f"{name}: use base units"
    if kind == "counter":
        assert not name.endswith("_total"), f"{name}: prometheus_client adds _total itself"
    if kind in ("gauge", "histogram", "summary"):
        assert not name.endswith("_total"), f"{name}: _total is for counters"
    labels = set(metric._labelnames)
    assert not labels & UNBOUNDED_LABELS, f"{name}: unbounded label(s) {sorted(labels & UNBOUNDED_LABELS)}"
    assert "le" not in labels and "quantile" not in labels
