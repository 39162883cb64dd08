"""Writes grafana/dashboards/tripmesh.json: edit the panels here, run
`uv run python deploy/observability/build_dashboard.py`, commit both files.

tests/e2e/test_dashboard.py checks that every metric a panel queries is exported by a running
stack, so a renamed metric fails a test instead of leaving an empty panel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "grafana" / "dashboards" / "tripmesh.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
W = 8  # three panels per row of the grid (24 wide)


def p50_p95(metric: str, by: str = "", legend: str = "") -> list[tuple[str, str]]:
    group = f"le, {by}" if by else "le"
    return [
        (f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[5m])))", f"{name} {legend}".strip())
        for q, name in (("0.5", "p50"), ("0.95", "p95"))
    ]


def p95_by(metric: str, by: str) -> list[tuple[str, str]]:
    return [(f"histogram_quantile(0.95, sum by (le, {by}) (rate({metric}_bucket[5m])))", "{{" + by + "}}")]


def panel(
    title: str, targets: list[tuple[str, str]], unit: str = "short", kind: str = "timeseries", desc: str = ""
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}}
        if kind == "timeseries"
        else {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


ROWS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "On call: first look",
        [
            panel(
                "Plans/s by outcome",
                [("sum by (status) (rate(tripmesh_planner_runs_finished_total[5m]))", "{{status}}")],
                "reqps",
                desc="Runs (creates and revisions) reaching a terminal status.",
            ),
            panel(
                "Plan latency p50 / p95",
                p50_p95("tripmesh_planner_plan_seconds"),
                "s",
                desc="From the planner accepting the command to the terminal status.",
            ),
            panel(
                "Runner lag per agent pool",
                [
                    (
                        'max by (consumer) (tripmesh_consumer_pending_messages{consumer=~"runner-.*"})',
                        "{{consumer}} pending",
                    ),
                    (
                        'max by (consumer) (tripmesh_consumer_ack_pending_messages{consumer=~"runner-.*"})',
                        "{{consumer}} in flight",
                    ),
                ],
                desc="Jobs waiting for a runner (pending) and being worked on (ack pending). "
                "Pending that keeps growing: scale that pool.",
            ),
            panel(
                "LLM spend per hour (USD)",
                [
                    (
                        "sum by (agent, model) (increase(tripmesh_llm_cost_usd_total[1h]))",
                        "{{agent}} {{model}}",
                    )
                ],
                "currencyUSD",
            ),
            panel(
                "DLQ depth",
                [("max(tripmesh_dlq_messages)", "dead letters")],
                kind="stat",
                desc="Messages in the DLQ stream (tripctl dlq ls). Exported by the planner.",
            ),
            panel(
                "Dead-lettered per hour by consumer",
                [
                    (
                        "sum by (consumer, kind) (increase(tripmesh_messages_dead_lettered_total[1h]))",
                        "{{consumer}} {{kind}}",
                    )
                ],
            ),
        ],
    ),
    (
        "gateway",
        [
            panel(
                "HTTP requests/s by route and status",
                [("sum by (route, status) (rate(tripmesh_http_requests_total[5m]))", "{{status}} {{route}}")],
                "reqps",
            ),
            panel(
                "HTTP latency p95 by route",
                p95_by("tripmesh_http_request_seconds", "route"),
                "s",
                desc="SSE routes count the whole stream.",
            ),
            panel(
                "Budget refusals/s",
                [("sum by (where) (rate(tripmesh_budget_refusals_total[5m]))", "{{where}}")],
                "reqps",
                desc="gateway: plans answered 402; runner: LLM calls the ledger would not reserve.",
            ),
            panel("Open SSE streams", [("sum(tripmesh_gateway_sse_streams)", "streams")]),
            panel(
                "svc.* calls by outcome",
                [
                    (
                        "sum by (subject, outcome) (rate(tripmesh_gateway_rpc_calls_total[5m]))",
                        "{{subject}} {{outcome}}",
                    )
                ],
                "reqps",
            ),
        ],
    ),
    (
        "planner",
        [
            panel(
                "Consumer lag (planner)",
                [
                    (
                        'max by (consumer) (tripmesh_consumer_pending_messages{consumer=~"planner-.*"})',
                        "{{consumer}} pending",
                    ),
                    (
                        'max by (consumer) (tripmesh_consumer_ack_pending_messages{consumer=~"planner-.*"})',
                        "{{consumer}} in flight",
                    ),
                ],
            ),
            panel(
                "Agent outcomes/s",
                [
                    (
                        "sum by (agent, outcome) (rate(tripmesh_planner_agent_outcomes_total[5m]))",
                        "{{agent}} {{outcome}}",
                    )
                ],
                "reqps",
            ),
            panel(
                "Graph invocations/s and expired jobs",
                [
                    ("sum by (kind) (rate(tripmesh_planner_graph_invocations_total[5m]))", "{{kind}}"),
                    ("sum by (agent) (rate(tripmesh_planner_jobs_expired_total[5m]))", "expired {{agent}}"),
                ],
                "reqps",
            ),
            panel("Plan lock wait p50 / p95", p50_p95("tripmesh_planner_lock_wait_seconds"), "s"),
        ],
    ),
    (
        "agent-runner",
        [
            panel(
                "Agent jobs/s by outcome",
                [("sum by (agent, outcome) (rate(tripmesh_agent_jobs_total[5m]))", "{{agent}} {{outcome}}")],
                "reqps",
            ),
            panel(
                "Agent job p95",
                p95_by("tripmesh_agent_job_seconds", "agent"),
                "s",
            ),
            panel(
                "LLM calls/s by model",
                [("sum by (model, outcome) (rate(tripmesh_llm_calls_total[5m]))", "{{model}} {{outcome}}")],
                "reqps",
            ),
            panel(
                "LLM tokens/s",
                [("sum by (agent, kind) (rate(tripmesh_llm_tokens_total[5m]))", "{{agent}} {{kind}}")],
            ),
            panel(
                "Ledger reservations/s",
                [("sum by (outcome) (rate(tripmesh_llm_reservations_total[5m]))", "{{outcome}}")],
                "reqps",
            ),
        ],
    ),
    (
        "cost-ledger",
        [
            panel(
                "Usage events ingested/s",
                [
                    ("sum(rate(tripmesh_ledger_events_ingested_total[5m]))", "new"),
                    ("sum(rate(tripmesh_ledger_duplicates_total[5m]))", "duplicate"),
                    (
                        "sum by (reason) (rate(tripmesh_ledger_events_rejected_total[5m]))",
                        "rejected {{reason}}",
                    ),
                ],
                "reqps",
            ),
            panel("Ingest batch p50 / p95", p50_p95("tripmesh_ledger_ingest_seconds"), "s"),
            panel(
                "Usage backlog",
                [('max(tripmesh_consumer_pending_messages{consumer="cost-ledger-usage"})', "pending")],
            ),
            panel(
                "Reservations decided/s",
                [
                    (
                        "sum by (outcome, reason) (rate(tripmesh_ledger_reservations_total[5m]))",
                        "{{outcome}} {{reason}}",
                    )
                ],
                "reqps",
            ),
        ],
    ),
    (
        "vector-sync",
        [
            panel(
                "Publish → searchable p50 / p95",
                p50_p95("tripmesh_vector_sync_lag_seconds"),
                "s",
                desc="tripmesh_vector_sync_lag_seconds: from the plan change's publish to its point written.",
            ),
            panel(
                "Changes/s by outcome",
                [("sum by (outcome) (rate(tripmesh_vector_sync_changes_total[5m]))", "{{outcome}}")],
                "reqps",
            ),
            panel(
                "Change backlog",
                [('max(tripmesh_consumer_pending_messages{consumer="vector-sync-changes"})', "pending")],
            ),
        ],
    ),
    (
        "bus (every consumer)",
        [
            panel(
                "Messages handled/s by consumer and outcome",
                [
                    (
                        "sum by (consumer, outcome) (rate(tripmesh_messages_handled_total[5m]))",
                        "{{consumer}} {{outcome}}",
                    )
                ],
                "reqps",
                desc="outcome retry = failed and nak'ed; dead_lettered = copied to the DLQ.",
            ),
            panel(
                "Redelivered/s",
                [("sum by (consumer) (rate(tripmesh_messages_redelivered_total[5m]))", "{{consumer}}")],
                "reqps",
            ),
            panel(
                "Handler p95 by consumer",
                p95_by("tripmesh_handler_seconds", "consumer"),
                "s",
            ),
            panel(
                "Store outage retries/s",
                [("sum(rate(tripmesh_store_outage_retries_total[5m]))", "retries")],
                "reqps",
            ),
        ],
    ),
]


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, next_id = 0, 1
    for title, row_panels in ROWS:
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id, y = next_id + 1, y + 1
        for i, item in enumerate(row_panels):
            item = {
                **item,
                "id": next_id,
                "gridPos": {"h": 8, "w": W, "x": (i % 3) * W, "y": y + (i // 3) * 8},
            }
            panels.append(item)
            next_id += 1
        y += ((len(row_panels) + 2) // 3) * 8
    return {
        "uid": "tripmesh-overview",
        "title": "tripmesh",
        "tags": ["tripmesh"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                    "current": {},
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {OUT}")
