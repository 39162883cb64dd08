"""cost-ledger's own Prometheus metrics (shared consumer metrics live in tripmesh_kit)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_INGESTED = Counter(
    "tripmesh_ledger_events_ingested_total", "Usage events added to the ledger (new rows only)"
)
DUPLICATES = Counter(
    "tripmesh_ledger_duplicates_total",
    "Usage events already in the ledger (redelivered or replayed): ignored",
)
REJECTED = Counter(
    "tripmesh_ledger_events_rejected_total",
    "Usage events dead-lettered by the ledger, by reason",
    ["reason"],
)
BATCH_SIZE = Histogram(
    "tripmesh_ledger_batch_size",
    "Messages per ingested batch",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
INGEST_SECONDS = Histogram(
    "tripmesh_ledger_ingest_seconds",
    "Time to ingest one batch (decode, commit, ack), including waits through an outage",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RESERVATIONS = Counter(
    "tripmesh_ledger_reservations_total",
    "Budget reservations decided, by outcome (granted, denied) and the reason of a denial",
    ["outcome", "reason"],
)
RESERVE_SECONDS = Histogram(
    "tripmesh_ledger_reserve_seconds",
    "Time to decide one reservation (lock, snapshot, insert, commit)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RESERVATIONS_EXPIRED = Counter(
    "tripmesh_ledger_reservations_expired_total",
    "Unsettled reservations charged at their reserved maximum (estimated)",
)
ALERTS = Counter(
    "tripmesh_ledger_cost_alerts_total",
    "Cost alerts published, by scope (daily, monthly, plan) and threshold percent",
    ["scope", "threshold"],
)
