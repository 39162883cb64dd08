"""Issue #10: every metric the Grafana dashboard queries is exported by a running service.

The real stack runs one plan; then the five services' /metrics are scraped and every panel's
PromQL is parsed for the metric names it selects. A renamed or removed metric fails here
instead of leaving an empty panel in front of the person on call.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from client import TERMINAL, UserFactory
from prometheus_client.parser import text_string_to_metric_families
from tripmesh_devstack.supervisor import Stack

pytestmark = pytest.mark.e2e

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/observability/grafana/dashboards/tripmesh.json"
SERVICES = ("gateway", "planner", "agent-runner", "cost-ledger", "vector-sync")
PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}
    | {"inf", "nan"}
)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions or
    aggregations (followed by `(`), keywords, label names (in `{...}` or `by (...)`) or
    durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery durations
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[a-zA-Z_:][\w:]*", expr):
        word = match.group()
        if expr[match.end() :].lstrip().startswith("(") or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_names_parser() -> None:
    p95 = 'histogram_quantile(0.95, sum by (le, route) (rate(tripmesh_http_seconds_bucket{a="b c"}[5m])))'
    assert metric_names(p95) == {"tripmesh_http_seconds_bucket"}
    lag = 'max by (consumer) (x_pending{consumer=~"runner-.*"}) / on (consumer) y offset 5m'
    assert metric_names(lag) == {"x_pending", "y"}
    assert metric_names("sum(rate(a_total[1h])) * 3600 + b") == {"a_total", "b"}


def dashboard_queries() -> dict[str, list[str]]:
    """Panel title -> its PromQL expressions (rows included, at any depth)."""
    queries: dict[str, list[str]] = {}

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            exprs = [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
            if exprs:
                queries[panel["title"]] = exprs

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return queries


def exported(text: str) -> tuple[set[str], set[str]]:
    """(names a scrape of `text` can select, names with at least one sample). A labelled
    metric that has not been used yet is exported (HELP/TYPE) without samples."""
    names: set[str] = set()
    with_samples: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
        for sample in family.samples:
            names.add(sample.name)
            with_samples.add(sample.name)
    return names, with_samples


async def scrape(stack: Stack) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(*(client.get(stack.url(name) + "/metrics") for name in SERVICES))
    for name, r in zip(SERVICES, answers, strict=True):
        assert r.status_code == 200, f"{name} /metrics: {r.status_code}"
    return {name: r.text for name, r in zip(SERVICES, answers, strict=True)}


async def test_every_dashboard_metric_is_exported(stack: Stack, new_user: UserFactory) -> None:
    user = await new_user("dashboard")
    plan_id = await user.create_plan()
    plan = await user.wait_for_plan(plan_id, lambda p: p["status"] in TERMINAL)
    assert plan["status"] in ("completed", "partial"), plan["status"]

    # the plan's change reaches vector-sync (and its usage the ledger) after the terminal
    # status; wait for the samples the first-look panels need (a liveness bound, not a target)
    must_have_samples = {
        "tripmesh_planner_runs_finished_total": "planner",
        "tripmesh_planner_plan_seconds_bucket": "planner",
        "tripmesh_llm_cost_usd_total": "agent-runner",
        "tripmesh_http_requests_total": "gateway",
        "tripmesh_ledger_events_ingested_total": "cost-ledger",
        "tripmesh_vector_sync_lag_seconds_bucket": "vector-sync",
        "tripmesh_consumer_pending_messages": "agent-runner",
        "tripmesh_dlq_messages": "planner",
    }
    deadline = time.monotonic() + 60
    while True:
        texts = await scrape(stack)
        by_service = {name: exported(text) for name, text in texts.items()}
        missing = [m for m, svc in must_have_samples.items() if m not in by_service[svc][1]]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert not missing, f"no samples yet for {missing}"
    assert 'consumer="runner-transport"' in texts["agent-runner"]
    assert 'tripmesh_consumer_pending_messages{consumer="planner-results"}' in texts["planner"]

    all_names = set().union(*(names for names, _ in by_service.values()))
    queries = dashboard_queries()
    assert len(queries) >= 5
    unknown: dict[str, set[str]] = {}
    for title, exprs in queries.items():
        selected = set().union(*(metric_names(e) for e in exprs))
        assert selected, f"panel {title!r} queries no metric"
        if selected - all_names:
            unknown[title] = selected - all_names
    assert not unknown, f"panels querying metrics no service exports: {unknown}"
